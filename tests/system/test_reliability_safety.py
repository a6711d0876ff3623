"""Safe loading: no pickle in the load path (safetensors, npz without pickle, zarr, JSON,
``torch.load(weights_only=True)``, YAML through the safe loader); a spec's relative paths
resolve against the spec's folder and errors show the resolved path; plugin code is
imported only when a spec names it. (The runtime side — no unpickling of code objects
during fresh, cached and recovering runs — is checked by the determinism and corruption
tests through an audit hook.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import TOY_SPEC
from tests.reliability_helpers import REPO, cli, cli_env, new_project, reference_run

SRC = REPO / "mispec"
# Pickle outside the load path, each with why it is safe:
PICKLE_ALLOWED = {
    # ships the in-memory Plan to Dask workers (Dask's own transport is pickle anyway);
    # the bytes are made by the client process of the same run, never read from a file
    "mispec/execute/dask/executor.py",
}


def _code(path: Path) -> str:
    """Source without comments (docstrings stay: a rule must hold in them too)."""
    return "\n".join(line.split("#", 1)[0] for line in path.read_text("utf-8").splitlines())


def _calls(text: str, name: str) -> list[str]:
    """The full text of every call ``name(...)`` (parentheses balanced)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        out.append(text[m.start() : i + 1])
    return out


SOURCES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(REPO)) for p in SOURCES])
def test_no_unsafe_deserialisation_in_the_package(path):
    rel = str(path.relative_to(REPO))
    text = _code(path)
    if rel not in PICKLE_ALLOWED:
        assert not re.search(
            r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b",
            text,
            re.M,
        ), f"{rel} imports a pickle-like module"
        assert not re.search(r"\bpickle\.(load|loads|Unpickler)\b", text), rel
    for call in _calls(text, "torch.load"):
        assert "weights_only=True" in call, f"{rel}: {call}"
    for call in _calls(text, "np.load") + _calls(text, "numpy.load"):
        assert "allow_pickle=False" in call, f"{rel}: {call}"
    for bad in (
        "weights_only=False",
        "allow_pickle=True",
        "trust_remote_code=True",
        "yaml.load(",
        "yaml.unsafe_load",
        "yaml.full_load",
        "yaml.Loader",
        "UnsafeLoader",
        "FullLoader",
        "yaml.load_all(",
    ):
        assert bad not in text, f"{rel}: {bad}"


def test_the_grep_sees_the_load_path():
    """The rules above are not vacuous: the load path is where they look."""
    state_dicts = _code(SRC / "models" / "state_dicts.py")  # where .pth files are read
    assert any("weights_only=True" in c for c in _calls(state_dicts, "torch.load"))
    assert _calls(_code(SRC / "store" / "cells.py"), "np.load")
    assert "SafeLoader" in _code(SRC / "spec" / "yaml_source.py")
    assert "safetensors" in _code(SRC / "models" / "checkpoints.py")


MARKER_PLUGIN = """\
from pathlib import Path

Path(__file__).with_name("IMPORTED").write_text("the plugin module was imported")

from mispec.metrics.core import metric


@metric(dims=(), hooks=("next_logprob",))
def marker(acts, prompts):
    return -acts["next_logprob"].mean()
"""


def test_plugin_modules_are_imported_only_when_a_spec_names_them(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(reference_run().parents[1], project, symlinks=True)
    (project / "marker_plugin.py").write_text(MARKER_PLUGIN)
    marker = project / "IMPORTED"
    env = cli_env(PYTHONPATH=str(project))  # importable by name from anywhere
    spec = project / "spec.yaml"
    for argv in (["validate", str(spec)], ["plan", str(spec)], ["run", str(spec), "-q"]):
        res = cli(*argv, cwd=project, env=env)
        assert res.returncode == 0, res.stderr
        assert not marker.exists(), f"`mispec {argv[0]}` imported a plugin the spec never names"
    named = project / "named.yaml"
    named.write_text(TOY_SPEC + '  marker: {fn: "marker_plugin:marker", prompts: rep}\n')
    res = cli("validate", str(named), cwd=project, env=env)
    assert res.returncode == 0, res.stderr
    assert marker.exists()  # the positive control: named, so imported


def test_entry_point_plugins_are_not_imported_by_specs_that_do_not_use_them(tmp_path):
    site = tmp_path / "site"
    dist = site / "mispec_marker_ep-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mispec-marker-ep\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mispec.metrics]\nmarker_ep = ep_marker:marker\n")
    (site / "ep_marker.py").write_text(MARKER_PLUGIN)
    spec = new_project(tmp_path / "project")
    res = cli("validate", str(spec), cwd=spec.parent, env=cli_env(PYTHONPATH=str(site)))
    assert res.returncode == 0, res.stderr
    assert not (site / "IMPORTED").exists()


def test_relative_paths_resolve_against_the_spec_folder_not_the_cwd(tmp_path):
    study, elsewhere = tmp_path / "study", tmp_path / "elsewhere"
    elsewhere.mkdir()
    train = TOY_SPEC[TOY_SPEC.index("    train:") : TOY_SPEC.index("    seeds:")]
    text = TOY_SPEC.replace(train, "    path: ckpts\n").replace("{steps: [0, 20, 40]}", "all")
    spec = new_project(study, text)
    # the same relative names exist beside the cwd: they must not be picked up
    (elsewhere / "ckpts").mkdir()
    (elsewhere / "ckpts" / "model_0.safetensors").write_text("x")
    (elsewhere / "ckpts" / "config.json").write_text("{}")
    res = cli("validate", "../study/spec.yaml", cwd=elsewhere)
    assert res.returncode == 2
    assert f"checkpoint folder not found: {study / 'ckpts'}" in res.stderr, res.stderr
    # ... and found beside the spec, whatever the cwd
    (study / "ckpts").mkdir()
    for name in ("model_0.safetensors", "model_20.safetensors", "config.json", "tokenizer.json"):
        (study / "ckpts" / name).write_text("{}" if name.endswith("json") else "x")
    (study / "prompts.txt").write_text("hello world\n")
    text = text.replace(
        "    generator: repeated_tokens\n    args: {n: 8, vocab: 16, half_len: 6}\n",
        "    file: prompts.txt\n",
    )
    spec.write_text(text + "  words: {fn: loss, prompts: rep}\n")
    res = cli("validate", "../study/spec.yaml", cwd=elsewhere)
    assert res.returncode == 0, res.stderr
    (study / "prompts.txt").unlink()
    res = cli("validate", "../study/spec.yaml", cwd=elsewhere)
    assert res.returncode == 2
    assert f"prompt file not found: {study / 'prompts.txt'}" in res.stderr, res.stderr
