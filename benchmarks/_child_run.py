"""Child process for the peak-RSS measurement: ONE ``mispec.run`` of a spec; prints its
counters as JSON on the last line. Usage: ``python benchmarks/_child_run.py SPEC STORE OUT [PROFILE]``."""

from __future__ import annotations

import json
import sys


def main() -> None:
    import os

    if os.environ.get("MISPEC_BENCH_THREADS"):
        import torch

        torch.set_num_threads(int(os.environ["MISPEC_BENCH_THREADS"]))
    import mispec

    spec, store, out = sys.argv[1:4]
    profile = sys.argv[4] if len(sys.argv) > 4 else None
    result = mispec.run(spec, progress=False, store=store, out=out, executor=profile)
    print(json.dumps({"counters": result.counters, "seconds": result.seconds, "peak": peak()}))


def peak() -> dict[str, float]:
    """This process's own peak and current RSS in MiB (``VmHWM`` / ``VmRSS``): unlike the
    parent's ``wait4`` ``ru_maxrss``, it does not inherit the parent's size through exec."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024
    return out


if __name__ == "__main__":
    main()
