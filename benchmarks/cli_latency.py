"""Start-up latency of the CLI: ``mispec --help``, ``mispec validate SPEC`` and ``mispec plan
SPEC`` (subprocesses, median of several), with a bare ``python -c pass`` as the interpreter's
own floor. (The planner's speed is measured here, not asserted in tests.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, REPO, median, run_child


def measure(repeats: int) -> dict[str, Any]:
    mispec = str(Path(PYTHON).with_name("mispec"))
    commands = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "mispec --help": [mispec, "--help"],
        "mispec validate specs/induction_heads.yaml": [
            mispec,
            "validate",
            str(REPO / "specs" / "induction_heads.yaml"),
        ],
        "mispec plan specs/induction_heads.yaml": [
            mispec,
            "plan",
            str(REPO / "specs" / "induction_heads.yaml"),
        ],
    }
    out = {}
    for name, argv in commands.items():
        run_child(argv)  # warm the page cache
        runs = [run_child(argv) for _ in range(repeats)]
        bad = [r for r in runs if r["rc"] != 0]
        if bad:
            raise RuntimeError(f"{name} failed (rc {bad[0]['rc']}): {bad[0]['stderr'][-2000:]}")
        out[name] = {
            "median_s": median([r["wall"] for r in runs]),
            "all_s": [round(r["wall"], 4) for r in runs],
        }
    return out
