"""Text renderers for the CLI; the library returns data, these only format it."""

from __future__ import annotations

from typing import Any

from mispec.results.planned import human_bytes, render_plan

__all__ = ["human_bytes", "render_plan", "render_run"]


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
    if result.claims:
        from collections import Counter

        counts = Counter(v.status for v in result.claims)
        lines.append("claims: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
        lines.extend(f"  {v.line()}" for v in result.claims)
    lines.append(f"results: {result.results_path}")
    lines.append(f"  open with: mispec.open_results('{result.run_dir}')")
    return "\n".join(lines)
