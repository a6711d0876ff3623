"""Fingerprints of the shipped studies: every plan key, and every result array's bytes.

Run it before and after a change that must not alter behaviour (a refactor), on the same
machine and `torch_threads`, and compare the two JSON files: equal means every plan key and
every result of each study is bit-identical.

    python scripts/study_fingerprints.py OUT.json [--skip grokking_full ...] [--plans-only]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
STORE_ROOT = Path(tempfile.gettempdir()) / "mispec-study-fingerprints"


def _mispec(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mispec.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)


def _digest_array(values: np.ndarray) -> str:
    data = np.ascontiguousarray(values)
    if data.dtype.kind in "OUS":
        payload = "\x1f".join(map(str, data.ravel().tolist())).encode()
    else:
        payload = data.tobytes()
    return hashlib.sha256(f"{data.dtype}{data.shape}".encode() + payload).hexdigest()[:16]


def result_digests(run_dir: Path) -> dict[str, str]:
    """One digest per variable and coordinate of every node of ``results.zarr``."""
    tree = xr.open_datatree(run_dir / "results.zarr", engine="zarr")
    out: dict[str, str] = {}
    for node in tree.subtree:
        ds = node.to_dataset()
        for name, var in {**ds.coords, **ds.data_vars}.items():
            out[f"{node.path}:{name}"] = _digest_array(var.values)
    return out


def fingerprint(spec: Path, *, plans_only: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        # one store path for every run of this script: the plan's JSON names its store
        store = STORE_ROOT / spec.stem
        shutil.rmtree(store, ignore_errors=True)
        plan = _mispec("plan", str(spec), "--format", "json", "--nodes", "--store", str(store))
        entry: dict[str, object] = {"plan_rc": plan.returncode}
        if plan.returncode == 0:
            nodes = json.loads(plan.stdout)
            entry["plan"] = hashlib.sha256(json.dumps(nodes, sort_keys=True).encode()).hexdigest()[
                :16
            ]
        else:
            entry["plan_error"] = plan.stderr.strip().splitlines()[-1:]
        if plans_only or plan.returncode != 0:
            return entry
        out = Path(tmp) / "run"
        run = _mispec("run", str(spec), "--store", str(store), "--out", str(out), "--quiet")
        entry["run_rc"] = run.returncode
        if run.returncode == 0:
            entry["results"] = result_digests(out)
        else:
            entry["run_error"] = run.stderr.strip().splitlines()[-3:]
        return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--plans-only", action="store_true")
    args = parser.parse_args()
    report: dict[str, object] = {}
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        if spec.stem in args.skip or (args.only and spec.stem not in args.only):
            continue
        print(f"{spec.stem} ...", file=sys.stderr, flush=True)
        report[spec.stem] = fingerprint(spec, plans_only=args.plans_only)
        args.out.write_text(json.dumps(report, indent=1, sort_keys=True))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
