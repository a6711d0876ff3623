"""Progress with the real clients: a real TTY (``script`` from util-linux) read back through a
terminal emulator (pyte), a pipe, and a Dask cluster whose workers' live metrics reach the
client."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pyte

import mispec
from tests.conftest import TOY_SPEC
from tests.system.test_live import LIVE
from tests.system.test_refine import SPEC as REFINE_SPEC

ROOT = Path(__file__).resolve().parents[2]
COLS, ROWS = 150, 60


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.pop("MISPEC_PROGRESS_EVERY", None)
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mispec.cli.main", *args]


def screen_of(output: bytes) -> list[str]:
    """The lines a terminal shows after ``output`` (trailing blanks dropped)."""
    screen = pyte.Screen(COLS, ROWS)
    pyte.ByteStream(screen).feed(output.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
    return [line.rstrip() for line in screen.display if line.strip()]


def test_a_refined_run_in_a_terminal_leaves_one_progress_block_and_no_frozen_line(write_spec):
    spec = write_spec(REFINE_SPEC)
    command = f"stty cols {COLS} rows {ROWS}; " + shlex.join(cli("run", str(spec)))
    done = subprocess.run(
        ["script", "--quiet", "--return", "--command", command, "/dev/null"],
        capture_output=True,
        env=cli_env(TERM="xterm-256color"),
        cwd=spec.parent,
        timeout=1800,  # a hang guard only: a loaded 2-core machine took 12 minutes
    )
    assert done.returncode == 0, done.stdout.decode(errors="replace")
    assert b"\x1b[" in done.stdout  # a terminal: rich drew live bars (cursor moves)
    lines = screen_of(done.stdout)
    bars = [line for line in lines if re.match(r"(training|checkpoints|reductions)\s+━", line)]
    # the final plan's counts, computed from the results: every checkpoint of both seeds
    ds = mispec.open_results(spec.parent / "runs" / "zoomtiny")["toy"].to_dataset()
    groups = int(ds.loss.notnull().sum())
    assert groups > 40  # refinement added checkpoints to the 20 of each seed
    reductions = sum("step" not in ds[v].dims for v in ds.data_vars) * ds.sizes["seed"]
    assert [re.split(r"\s+", b)[0] for b in bars] == ["training", "checkpoints", "reductions"]
    assert re.search(r" 2/2 .* done$", bars[0]), bars
    assert re.search(rf" {groups}/{groups} .* done$", bars[1]), bars
    assert re.search(rf" {reductions}/{reductions} .* done$", bars[2]), bars
    # nothing frozen: no training loop's bar, no bar of an earlier round
    assert not any(re.match(r"train\b|training .* 0/2", line) for line in lines), lines
    assert not any("seed 0 (resume" in line or "train toy" in line for line in lines), lines
    # the summary follows the one block, unchanged
    first = lines.index(bars[2]) + 1
    assert lines[first].startswith("done in ") and "reductions" in lines[first]
    assert "toy seed 0: refine crossing" in "\n".join(lines[first:])


def test_a_run_into_a_pipe_prints_plain_progress_lines(write_spec):
    spec = write_spec(TOY_SPEC)
    done = subprocess.run(
        cli("run", str(spec)),
        capture_output=True,
        text=True,
        env=cli_env(MISPEC_PROGRESS_EVERY="0"),  # a line at every change
        cwd=spec.parent,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("done in ")  # the summary on stdout, as before
    err = done.stderr.splitlines()
    assert "\x1b" not in done.stderr and "━" not in done.stderr
    assert err and all(re.match(r"\[mispec \d+:\d\d:\d\d\] ", line) for line in err), err
    body = [line.split("] ", 1)[1] for line in err]
    assert body[0] == "training 0/1"
    assert "training 0/1 | checkpoints 0/3 | reductions 0/1" in body
    # the training loop, with its loss, every 10 updates up to the last
    trained = [re.search(r"train toy seed 0 (\d+)/40", line) for line in body]
    assert [int(m.group(1)) for m in trained if m] == [0, 10, 20, 30, 40]
    assert any(re.search(r"train toy seed 0 20/40 .*\(loss \d\.\d{4}\)", line) for line in body)
    assert any("checkpoints 2/3" in line and "(toy seed 0 step 20)" in line for line in body)
    assert body[-1] == "training 1/1 (done) | checkpoints 3/3 (done) | reductions 1/1 (done)"


def test_a_bad_interval_is_refused_before_any_work(write_spec):
    spec = write_spec(TOY_SPEC)
    for args, env, said in (
        (["--progress-every", "-5"], {}, "--progress-every: -5.0 is not a number of seconds >= 0"),
        ([], {"MISPEC_PROGRESS_EVERY": "soon"}, "$MISPEC_PROGRESS_EVERY='soon' is not a number"),
    ):
        done = subprocess.run(
            cli("run", str(spec), *args),
            capture_output=True,
            text=True,
            env=cli_env(**env),
            cwd=spec.parent,
            timeout=300,
        )
        assert done.returncode == 2 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert not (spec.parent / "runs").exists()
        assert not any((spec.parent / ".mispec").glob("*/*"))  # nothing written


def test_live_metrics_of_a_dask_worker_reach_the_client(write_spec, capsys):
    spec = write_spec(LIVE)
    result = mispec.run(spec, executor="dask-local", progress=True, progress_every=0)
    body = [line.split("] ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    ds = result.open()["toy"].to_dataset().sel(seed=0)
    for step in (20, 40):  # the bar at update N shows the live metrics of checkpoint N
        loss, icl = float(ds.loss.sel(step=step)), float(ds.icl.sel(step=step))
        values = re.escape(f"loss={loss:.3g} icl={icl:.3g})")
        shown = rf"train toy seed 0 {step}/40 .*\(loss \d\.\d{{4}} {values}"
        assert any(re.search(shown, line) for line in body), (shown, body)
    assert body[-1] == "training 1/1 (done) | checkpoints 3/3 (done) | reductions 1/1 (done)"
