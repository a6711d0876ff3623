"""``mispec plot RUN <TAB>`` completes the metric names of that run's results, as a real
bash sees them: the generated script run with ``COMP_WORDS``/``COMP_CWORD`` set."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import mispec
from mispec.cli.completion import run_metric_names
from mispec.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_plot_run_completes_the_runs_metric_names(toy_spec, tmp_path, capsys):
    result = mispec.run(toy_spec, progress=False)
    tree = mispec.open_results(result.run_dir)
    expected = sorted({str(v) for node in tree.subtree for v in node.data_vars})
    assert {"loss", "icl", "induction"} <= set(expected)
    assert "step" not in expected  # a coordinate, not a metric

    assert main(["completion", "bash"]) == 0
    script = tmp_path / "mispec.bash"
    script.write_text(capsys.readouterr().out)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def complete(*words: str) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        cmd = (
            f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _mispec; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env)
        return [w for w in done.stdout.splitlines() if w]

    run = str(result.run_dir)
    assert sorted(complete("mispec", "plot", run, "")) == expected
    assert sorted(complete("mispec", "plot", "-o", "f.png", run, "loss", "i")) == sorted(
        m for m in expected if m.startswith("i")
    )
    assert sorted(complete("mispec", "plot", f"{run}/results.zarr", "")) == expected
    assert run_metric_names(tmp_path / "no-such-run") == []
    assert complete("mispec", "plot", str(tmp_path / "no-such-run"), "") == []
