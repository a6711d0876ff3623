"""Speed-up of the Dask executor (a LocalCluster, 2 worker processes) over the local executor
on a sweep of >= 100 checkpoints, measured side by side in one process, fresh stores each.

    .venv/bin/python benchmarks/dask_speedup.py               # ~2 x 51 checkpoints
    .venv/bin/python benchmarks/dask_speedup.py --every 4     # more checkpoints
    .venv/bin/python benchmarks/dask_speedup.py --torch-default-threads   # + a 3rd row

The study: the embedded default's 2-layer attention-only toy (d_model 64), 2 seeds,
``--steps`` training steps, a checkpoint every ``--every`` steps, the default study's metrics
(loss, per-token loss, induction, previous-token, ICL, K-composition, transition step).

Both executors run every task with 1 torch intra-op thread (what the Dask tasks pin), so
their results are bit-identical (checked and printed). ``--torch-default-threads`` adds the
local executor under torch's default thread count (all cores), whose results differ in the
last bits, and which is much slower when the cores are shared with other processes.

Measured numbers, and the conditions they were measured in: docs/distributed.md
("Performance").

Where the time goes: training is ONE task per (model, seed) — sequential by nature — so with
2 seeds the 2 workers train in parallel; each checkpoint group (load weights, one forward
pass, metrics, writes) is one task. The Dask run also pays a fixed cost: starting the cluster,
each worker importing torch + TransformerLens, and shutting down.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

SPEC = """\
mispec: 1
name: dask-speedup
models:
  toy2l:
    train:
      task: repeated_tokens
      task_args: {{vocab: 64, half_len: 24, min_len: 12}}
      arch: {{n_layers: 2, n_heads: 4, d_model: 64, d_head: 16, attn_only: true, normalization: LN}}
      steps: {steps}
      batch_size: 64
      optimizer: {{name: adamw, lr: 1.0e-3, weight_decay: 0.01}}
    seeds: [0, 1]
    checkpoints: {{every: {every}}}
prompts:
  repeats:
    generator: repeated_tokens
    args: {{n: 32, vocab: 64, half_len: 24}}
    seed: 123
metrics:
  loss:           {{fn: loss, prompts: repeats, args: {{mask: none}}}}
  per_token_loss: {{fn: per_token_loss, prompts: repeats, args: {{mask: none}}}}
  induction:      {{fn: induction_score, prompts: repeats}}
  prev_token:     {{fn: previous_token_score, prompts: repeats}}
  icl:            {{fn: icl_score, inputs: {{per_token_loss: per_token_loss}}, args: {{early: 2, late: 40}}}}
  k_composition:  {{fn: composition_score, args: {{mode: K}}}}
  induction_max:  {{fn: reduce, inputs: {{x: induction}}, args: {{over: [layer, head], how: max}}}}
  transition:     {{fn: transition_step, inputs: {{series: induction_max}}}}
"""


def identical(a: Path, b: Path) -> bool:
    import numpy as np

    import mispec

    ta, tb = mispec.open_results(a).load(), mispec.open_results(b).load()
    for node in ta.subtree:
        da, db = node.to_dataset(), tb[node.path].to_dataset()
        if sorted(da.data_vars) != sorted(db.data_vars):
            return False
        for name in da.data_vars:
            x, y = np.asarray(da[name].values), np.asarray(db[name].values)
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps per seed")
    parser.add_argument("--every", type=int, default=8, help="a checkpoint every N steps")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument(
        "--torch-default-threads",
        action="store_true",
        help="also time the local executor with torch's default thread count",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()

    import torch

    import mispec
    from mispec.runtime.threads import pinned_torch_threads

    default_threads = torch.get_num_threads()
    root = Path(tempfile.mkdtemp(prefix="mispec-dask-bench-"))
    (root / ".mispec").mkdir()
    spec = root / "study.yaml"
    spec.write_text(SPEC.format(steps=args.steps, every=args.every))
    profile = root / "dask.yaml"
    profile.write_text(
        f"name: dask-local-{args.workers}\nkind: dask-local\ndevice: cpu\nbatch_size: 64\n"
        f"workers: {args.workers}\nthreads_per_worker: 1\nretries: 2\n"
    )
    from mispec.api import plan

    planned = plan(spec, store=root / "probe-store")
    n_ckpt = len({(n.model, n.seed, n.step) for n in planned.plan.nodes() if n.kind == "cell"})
    print(
        f"sweep: 2 seeds x {args.steps} training steps, {n_ckpt} checkpoints, "
        f"{sum(1 for n in planned.plan.nodes() if n.kind == 'cell')} cells; "
        f"{_cores()} cores, torch default threads {default_threads}",
        flush=True,
    )

    rows = []

    def timed(label: str, threads: int | None, executor: str | None) -> None:
        tag = label.split()[0] + str(len(rows))
        print(f"running: {label} ... (load average {os.getloadavg()[0]:.1f})", flush=True)
        t0, c0 = time.perf_counter(), _cpu()
        with pinned_torch_threads(threads):
            result = mispec.run(
                spec,
                executor=executor,
                store=root / f"store-{tag}",
                out=root / f"run-{tag}",
                progress=False,
            )
        rows.append((label, time.perf_counter() - t0, _cpu() - c0, result))

    timed("local executor, 1 torch thread", 1, None)
    timed(f"dask-local, {args.workers} workers x 1 thread", None, str(profile))
    if args.torch_default_threads:
        timed(f"local executor, {default_threads} torch threads", None, None)

    # the training part alone, for the breakdown (one seed, 1 thread, fresh store)
    from mispec.models import ensure_trained
    from mispec.validation.load import load_spec

    train = load_spec(spec).spec.models["toy2l"].train
    t0 = time.perf_counter()
    with pinned_torch_threads(1):
        ensure_trained("toy2l", train, 0, [args.steps], root / "train-only", progress=False)
    t_train = time.perf_counter() - t0

    base = rows[0][1]
    print()
    print(
        f"| {'executor':<36} | {'seconds':>7} | {'speed-up':>8} | {'CPU s':>6} "
        "| forward passes | cells |"
    )
    print(f"|{'-' * 38}|{'-' * 9}|{'-' * 10}|{'-' * 8}|{'-' * 16}|{'-' * 7}|")
    for label, secs, cpu, result in rows:
        c = result.counters
        print(
            f"| {label:<36} | {secs:7.1f} | {base / secs:7.2f}x | {cpu:6.1f} "
            f"| {c['forward_passes']:>14} | {c['cells_computed']:>5} |"
        )
    same = identical(rows[0][3].run_dir, rows[1][3].run_dir)
    print()
    print(f"dask results identical to the local executor's, bit for bit: {same}")
    if args.torch_default_threads:
        print(
            f"local with {default_threads} threads identical to 1 thread: "
            f"{identical(rows[0][3].run_dir, rows[2][3].run_dir)}"
        )
    rest = max(base - 2 * t_train, 0.0)
    print(
        f"breakdown: training one seed alone takes {t_train:.1f} s (1 thread), so the local "
        f"executor spends ~{2 * t_train:.1f} s training 2 seeds and ~{rest:.1f} s on "
        f"{n_ckpt} checkpoint groups + reductions. Dask trains the 2 seeds at once and "
        f"splits the groups over {args.workers} workers: on {args.workers} idle cores about "
        f"{t_train + rest / args.workers:.1f} s plus cluster start-up, worker imports and "
        "shutdown; cores busy with other work stretch both."
    )
    print(f"load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.keep:
        print(f"kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if same else 1


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the Dask workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":  # Dask starts worker processes with spawn: keep this guard
    sys.exit(main())
