"""The local executor: a loop over the work list in one process."""

from __future__ import annotations

from mispec.execute.context import RunContext
from mispec.execute.group import run_group, run_reduction
from mispec.execute.memory import tune_malloc
from mispec.execute.progress import progress_bars
from mispec.execute.threads import pinned_torch_threads
from mispec.execute.work import work_list
from mispec.store.writer import BackgroundWriter, InlineWriter


def execute_local(ctx: RunContext, *, progress: bool = True, torch_threads: int | None = 1) -> None:
    series_list = work_list(ctx.plan)
    n_groups = sum(len(s.groups) for s in series_list)
    n_red = sum(len(s.reductions) for s in series_list)
    tune_malloc()  # no unmap / fault-in churn of activation buffers between forward passes
    with pinned_torch_threads(torch_threads), progress_bars(progress) as bars:
        writer = ctx.writer = _writer()
        overall = bars.add_task("checkpoints", total=n_groups, status="")
        reduce_task = bars.add_task("reductions", total=n_red, status="") if n_red else None
        try:
            for series in series_list:
                source = ctx.plan.resolution.sources[series.model]
                steps = list(ctx.plan.resolution.series[(series.model, series.seed)].steps)
                if series.train is not None and source.pending_training(
                    series.seed, steps, ctx.store.root
                ):
                    bars.update(overall, status=f"training {series.model} seed {series.seed}")
                    ctx.counters.training_steps += source.prepare(
                        series.seed, steps, ctx.store.root, progress=progress
                    )
                for group in series.groups:
                    bars.update(
                        overall, status=f"{series.model} seed {series.seed} step {group.step}"
                    )
                    run_group(ctx, group.model, group.seed, group.step, list(group.cells))
                    bars.advance(overall)
                for red in series.reductions:
                    run_reduction(ctx, ctx.plan.node(red))
                    if reduce_task is not None:
                        bars.advance(reduce_task)
            writer.flush()  # raises the first failed write
            bars.update(overall, status="done")
        finally:
            writer.close()  # what was computed lands even when the run stops early
            ctx.writer = InlineWriter()
            ctx.close()


def _writer() -> BackgroundWriter | InlineWriter:
    """A background writer (store writes overlap the next forward pass) when a core is left
    over from torch's threads; otherwise writes happen inline. A writer thread on a core that
    an OpenMP thread also needs stalls every parallel region of the forward pass: measured on
    2 cores with 2 torch threads, the background writer made a toy cold run 1.1-1.3x slower
    than writing inline, while with 1 torch thread it hid the writes entirely."""
    import os

    import torch

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return BackgroundWriter() if torch.get_num_threads() < cores else InlineWriter()
