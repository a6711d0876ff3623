"""Text renderers for the CLI; the library returns data, these only format it."""

from __future__ import annotations

from typing import Any


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def render_plan(planned: Any) -> str:
    plan, status = planned.plan, planned.status
    counts = status.counts
    lines = [f"study {plan.spec.name}  (plan {plan.key})", "nodes:"]
    from mispec.planning.nodes import NODE_TYPES

    for kind in (t.kind for t in NODE_TYPES):
        if counts.get(kind):
            lines.append(f"  {kind:<11} {counts[kind]}")
    lines.append("series:")
    for (model, seed), series in sorted(plan.resolution.series.items()):
        steps = series.steps
        shown = (
            ", ".join(map(str, steps))
            if len(steps) <= 8
            else f"{', '.join(map(str, steps[:4]))}, ..., {', '.join(map(str, steps[-2:]))}"
        )
        lines.append(f"  {model} seed {seed}: {len(steps)} checkpoints [{shown}]")
    refinement = planned.refinement_lines() if hasattr(planned, "refinement_lines") else []
    if refinement:
        lines.append("refine:")
        lines += [f"  {line}" for line in refinement]
    lines.append("status:")
    lines.append(f"  results cached   {status.cells_cached}/{status.cells_total}")
    lines.append(f"  forward passes   {status.forward_passes} to run (of {status.forward_total})")
    if status.pair_cells:
        own = status.pair_interventions_todo
        lines.append(
            f"  comparisons      {status.pair_cells_todo} of {status.pair_cells} pair cells to "
            "compute, from the sides' cells: "
            + (
                f"{own} of them patch a model (passes of their own)"
                if own
                else "no forward pass of their own"
            )
        )
    for key, n in status.training_steps_todo.items():
        lines.append(f"  training         {key}: ~{n} steps to train")
    lines.append(
        f"  activation cache +{human_bytes(status.activation_bytes_new)} "
        f"(full study ~{human_bytes(status.activation_bytes_total)}, uncompressed) "
        f"in {planned.store_dir}"
    )
    if status.up_to_date:
        lines.append("  up to date: a run would do no work")
    return "\n".join(lines)


def render_run(result: Any) -> str:
    """The run's outcome and its results summary (stdout). ``--quiet`` silences progress
    (stderr) only: the summary is the run's result, never dropped."""
    c = result.counters
    lines = []
    if not result.did_work:
        lines.append(
            "nothing to do: every result was already cached "
            f"(0 forward passes, {c['cells_cached']} cached results)"
        )
    else:
        batched = c.get("batched_forward_calls", 0)  # several checkpoints per call (GPU)
        calls = f" in {batched} batched call(s)" if batched else ""
        lines.append(
            f"done in {result.seconds:.1f} s: {c['training_steps']} training steps, "
            f"{c['forward_passes']} forward passes{calls}, {c['cells_computed']} results computed, "
            f"{c['reductions_computed']} reductions, {c['cells_cached']} reused from cache"
        )
    lines.extend(f"  {line}" for line in result.summary)
    lines.append(f"results: {result.results_path}")
    lines.append(f"  open with: mispec.open_results('{result.run_dir}')")
    return "\n".join(lines)
