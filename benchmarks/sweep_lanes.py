"""A sweep run in lanes (one worker process per point, ``processes: 2``) against its points
one after another (``processes: 1``), side by side in one run, each into a fresh project.

The sweep: the toy model of the default study (2-layer attention-only) at two learning rates,
``--steps`` training steps each (default 1 500, a point of specs/grokking_phase_diagram.yaml),
5 checkpoints, loss and induction score. Each run is a whole ``mispec run`` process, as a user
starts it, imports included. The figure is the wall-time ratio lanes / serial (target <= 0.55
on 2 free cores); results are identical (tests/system/test_day_sweeps.py).

Lanes pay a fixed cost serial training does not: each worker process starts, imports torch
and TransformerLens and rebuilds the plan (at 10 steps per point a whole run took 9.5 s one
after another, 11.6 s in lanes). Measured with ``benchmarks/run_all.py --only sweep`` (best of
2): 0.51x and 0.55x in two runs at 1 500 steps per point (59.3 s against 115.3 s, 57.6 s
against 105.2 s). Two plain torch loops side by side on this machine's 2 cores each ran
1.05-1.13x as long as one alone: no two-process scheme does much better here.

    python -m benchmarks.sweep_lanes --steps 1500 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = """\
mispec: 1
name: sweep-bench
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {{vocab: 64, half_len: 24}}
      arch: {{n_layers: 2, n_heads: 4, d_model: 64, d_head: 16, attn_only: true}}
      steps: {steps}
      batch_size: 64
    sweep:
      optimizer.lr: [0.001, 0.002]
    seeds: [0]
    checkpoints: {{schedule: log, count: 5}}
prompts:
  rep: {{generator: repeated_tokens, args: {{n: 16, vocab: 64, half_len: 24}}, seed: 1}}
metrics:
  loss: {{fn: loss, prompts: rep}}
  induction: {{fn: induction_score, prompts: rep}}
"""


def run_once(steps: int, processes: int, root: Path) -> float:
    """One whole ``mispec run`` process, as a user starts it (its imports included), into a
    fresh project: its wall time."""
    project = root / f"p{processes}"
    shutil.rmtree(project, ignore_errors=True)
    (project / ".mispec").mkdir(parents=True)
    (project / "spec.yaml").write_text(SPEC.format(steps=steps))
    profile = root / f"lanes{processes}.yaml"
    profile.write_text(
        f"name: lanes{processes}\nkind: local\ntorch_threads: 1\nprocesses: {processes}\n"
        "parallel_min_steps: 1\n"
    )
    mispec = Path(sys.executable).with_name("mispec")  # the console script of this environment
    argv = [str(mispec), "run", "spec.yaml", "--executor", str(profile), "--quiet"]
    start = time.perf_counter()
    subprocess.run(argv, cwd=project, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(steps: int, repeats: int, root: Path) -> dict[str, Any]:
    """Serial and lanes alternately, ``repeats`` times each, into fresh projects under
    ``root``: the best wall of each, every wall, and the ratio lanes / serial."""
    from benchmarks.common import load_average

    walls: dict[str, list[float]] = {"serial": [], "lanes": []}
    load_before = load_average()
    for _ in range(repeats):
        walls["serial"].append(run_once(steps, 1, root))
        walls["lanes"].append(run_once(steps, 2, root))
    return {
        "serial_s": min(walls["serial"]),
        "lanes_s": min(walls["lanes"]),
        "walls": walls,
        "ratio": min(walls["lanes"]) / min(walls["serial"]),
        "points": 2,
        "steps": steps,
        "repeats": repeats,
        "load_before": load_before,
        "load_after": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    try:
        print(json.dumps(measure(args.steps, args.repeats, root), indent=1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
