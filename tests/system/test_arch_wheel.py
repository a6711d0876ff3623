"""The built-in execution profiles ship inside the wheel: mispec built as a wheel, installed
into a fresh venv, runs a spec with ``--executor dask-local`` from a folder that has no
``executors/``, with results identical to a local run's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

import mispec

REPO = Path(__file__).resolve().parents[2]

SPEC = """\
mispec: 1
name: wheel
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 10
      batch_size: 8
    seeds: [0]
    checkpoints: {steps: [0, 10]}
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 4, vocab: 16, half_len: 6}
    seed: 1
metrics:
  loss: {fn: loss, prompts: rep}
  induction: {fn: induction_score, prompts: rep}
"""


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _installed_wheel(tmp_path: Path) -> Path:
    """A fresh venv holding mispec's wheel (built from this checkout); its dependencies
    come from this interpreter's site-packages (a ``.pth`` line: no network)."""
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info
    shutil.copytree(
        REPO / "mispec", source / "mispec", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        wheels,
        source,
    )
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    (wheel,) = wheels.glob("mispec-*.whl")
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-index",
        "-q",
        wheel,
    )
    purelib = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    ours = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    (purelib / "project_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    imported = _run(python, "-c", "import mispec; print(mispec.__file__)", cwd=tmp_path).strip()
    assert Path(imported).is_relative_to(venv), imported  # the wheel's mispec, not this one
    return venv


def test_the_installed_wheel_runs_with_a_builtin_profile(tmp_path: Path):
    venv = _installed_wheel(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "spec.yaml").write_text(SPEC)
    _run(
        venv / "bin" / "mispec",
        "run",
        "spec.yaml",
        "--executor",
        "dask-local",
        "--store",
        "store",
        "--out",
        "dask",
        "-q",
        cwd=project,
    )
    assert not (project / "executors").exists()
    provenance = json.loads((project / "dask" / "provenance.json").read_text())
    assert provenance["executor"]["kind"] == "dask-local"
    assert provenance["executor"]["options"]["workers"] == 2  # mispec/profiles/dask-local.yaml

    local = mispec.run(
        project / "spec.yaml",
        store=tmp_path / "local-store",
        out=tmp_path / "local",
        progress=False,
    )
    ta = mispec.open_results(local.run_dir).load()
    tb = mispec.open_results(project / "dask").load()
    compared = 0
    for node in ta.subtree:
        for name, var in node.to_dataset().data_vars.items():
            other = tb[node.path].to_dataset()[name]
            assert np.asarray(var.values).tobytes() == np.asarray(other.values).tobytes(), name
            compared += 1
    assert compared >= 2


def test_a_project_profile_overrides_or_adds_to_the_builtin_ones(tmp_path: Path, monkeypatch):
    from mispec.errors import ExecutorError
    from mispec.execute.profile import load_profile

    monkeypatch.chdir(tmp_path)
    assert load_profile("dask-local").options.workers == 2
    (tmp_path / "executors").mkdir()
    (tmp_path / "executors" / "dask-local.yaml").write_text("kind: dask-local\nworkers: 3\n")
    (tmp_path / "executors" / "serial.yaml").write_text("name: serial\nprocesses: 1\n")
    assert load_profile("dask-local").options.workers == 3
    assert load_profile("serial").options.processes == 1
    assert load_profile(None).name == "local"
    with pytest.raises(ExecutorError, match=r"\(no executors/seral.yaml\).*'serial'"):
        load_profile("seral")
    with pytest.raises(ExecutorError, match=r"expected one of: dask-local, dask-remote, dask-s"):
        load_profile("gpu-farm")
