"""A planned spec — the spec, its plan and what of it the store holds — and its text."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.spec.load import LoadedSpec
from mispec.validation.load import load_spec

if TYPE_CHECKING:
    from mispec.execute.refine import Refinement
    from mispec.planning.graph import Plan
    from mispec.results.status import PlanStatus


@dataclass
class PlannedSpec:
    """A spec, its plan, and what of that plan the store already holds."""

    loaded: LoadedSpec
    plan: Plan
    status: PlanStatus
    store_dir: Path
    refinement: Refinement | None = None  # ``refine:`` rounds the store already decides

    def __repr__(self) -> str:
        st = self.status
        return (
            f"<PlannedSpec '{self.plan.spec.name}': {st.cells_cached}/{st.cells_total} results "
            f"cached, {st.forward_passes} forward passes to run; store {self.store_dir}>"
        )

    def _repr_markdown_(self) -> str:
        """Jupyter shows a plan as ``mispec plan`` prints it."""
        return "```\n" + render_plan(self) + "\n```"

    def to_json(self) -> dict[str, Any]:
        from mispec.planning.graph import plan_json

        out = plan_json(self.plan)
        out["status"] = self.status.to_json()
        out["store"] = str(self.store_dir)
        if self.refinement is not None:
            out["refinement"] = self.refinement_lines()
        sweeps = self.sweeps()
        if sweeps:
            out["sweeps"] = [s.to_json() for s in sweeps]
        return out

    def sweeps(self) -> list[Any]:
        """Each sweep's points: how many, how many cached, how much training is left."""
        from mispec.results.sweep_status import sweep_status
        from mispec.store.store import Store

        store = Store(self.store_dir) if self.store_dir.exists() else None
        return sweep_status(self.plan, self.status, store)

    def refinement_lines(self) -> list[str]:
        """Where ``refine:`` stands per seed, and how many checkpoints it may still add."""
        from mispec.execute.refine import refined_models

        if self.refinement is None:
            return []
        lines = self.refinement.lines()
        for model, r in refined_models(self.plan.spec).items():
            for seed in self.plan.spec.models[model].seeds:
                state = self.refinement.states.get((model, seed))
                if state is None or not state.resolved:
                    left = r.budget - (len(state.added) if state else 0)
                    lines.append(
                        f"{model} seed {seed}: refine may add up to {left} more checkpoint(s) "
                        f"around {r.transition} (to {r.resolution} step(s))"
                    )
        return lines


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
    sweeps = planned.sweeps() if hasattr(planned, "sweeps") else []
    if sweeps:
        lines.append("sweeps:")
        lines += [f"  {s.line()}" for s in sweeps]
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


def plan(
    spec: str | Path | LoadedSpec,
    *,
    store: str | Path | None = None,
    extra_steps: Mapping[tuple[str, int], Iterable[int]] | None = None,
) -> PlannedSpec:
    """Validate, resolve and plan a spec; report what is cached in the store (read-only).
    ``extra_steps``: steps added to a (model, seed)'s checkpoints (``refine:`` rounds)."""
    from mispec.planning.graph import build_plan
    from mispec.planning.resolve import resolve
    from mispec.results.status import plan_status
    from mispec.store.store import Store, check_store_dir, default_store_dir

    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    store_dir = Path(store).resolve() if store else default_store_dir(loaded.path)
    check_store_dir(store_dir)
    the_plan = build_plan(loaded.spec, resolve(loaded, extra_steps), loaded.base_dir)
    store_obj = Store(store_dir) if store_dir.exists() else None
    refinement = None
    from mispec.execute.refine import refined_models, replay

    if refined_models(loaded.spec) and extra_steps is None:
        read = store_obj.cells.read if store_obj is not None else (lambda key: None)
        the_plan, refinement = replay(the_plan, read, replanner(loaded))
    status = plan_status(the_plan, store_obj)
    return PlannedSpec(loaded, the_plan, status, store_dir, refinement)


def replanner(loaded: LoadedSpec) -> Callable[[Mapping[tuple[str, int], Iterable[int]]], Plan]:
    """The plan of ``loaded`` with steps added to some (model, seed)s."""
    from mispec.planning.graph import build_plan
    from mispec.planning.resolve import resolve

    def replan(extra: Mapping[tuple[str, int], Iterable[int]]) -> Plan:
        return build_plan(loaded.spec, resolve(loaded, extra), loaded.base_dir)

    return replan
