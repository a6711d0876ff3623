"""The Python API — the CLI's twin: ``load_spec``, ``plan``, ``run``, ``open_results``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import ResultsError
from mispec.spec.load import LoadedSpec, load_spec

if TYPE_CHECKING:
    import xarray as xr

    from mispec.execute.context import RunContext
    from mispec.execute.refine import Refinement
    from mispec.planning.graph import Plan
    from mispec.results.status import PlanStatus
    from mispec.store.store import Store

__all__ = ["load_spec", "plan", "run", "open_results", "RunResult", "PlannedSpec"]


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
        from mispec.cli.render import render_plan

        return "```\n" + render_plan(self) + "\n```"

    def to_json(self) -> dict[str, Any]:
        from mispec.planning.graph import plan_json

        out = plan_json(self.plan)
        out["status"] = self.status.to_json()
        out["store"] = str(self.store_dir)
        if self.refinement is not None:
            out["refinement"] = self.refinement_lines()
        return out

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
        the_plan, refinement = replay(the_plan, read, _replanner(loaded))
    status = plan_status(the_plan, store_obj)
    return PlannedSpec(loaded, the_plan, status, store_dir, refinement)


def _replanner(loaded: LoadedSpec) -> Callable[[Mapping[tuple[str, int], Iterable[int]]], Plan]:
    """The plan of ``loaded`` with steps added to some (model, seed)s."""
    from mispec.planning.graph import build_plan
    from mispec.planning.resolve import resolve

    def replan(extra: Mapping[tuple[str, int], Iterable[int]]) -> Plan:
        return build_plan(loaded.spec, resolve(loaded, extra), loaded.base_dir)

    return replan


@dataclass
class RunResult:
    """What a run did: where its results are, its work counters, its headline summary."""

    run_dir: Path
    results_path: Path
    counters: dict[str, int]
    seconds: float
    did_work: bool
    summary: list[str] = field(default_factory=list)

    def open(self) -> xr.DataTree:
        """The run's results (``mispec.open_results(run_dir)``)."""
        return open_results(self.results_path)

    def __repr__(self) -> str:
        work = "did work" if self.did_work else "nothing to do"
        return (
            f"<RunResult {self.run_dir}: {work} in {self.seconds:.1f} s, "
            f"{self.counters.get('forward_passes', 0)} forward passes; .open() for the results>"
        )


def run(
    spec: str | Path | LoadedSpec,
    *,
    executor: str | None = None,
    out: str | Path | None = None,
    store: str | Path | None = None,
    progress: bool = True,
) -> RunResult:
    """Run a spec: train what is missing, compute what is not cached, assemble the results
    into ``runs/<name>/results.zarr`` beside the exact spec, plan and provenance.

    A re-run that computes nothing, into a run folder that already holds this very run,
    leaves the folder as it is (no new ``history/`` entry) and is recorded in the run index
    as ``unchanged``."""
    from mispec.execute.context import RunContext
    from mispec.execute.profile import load_profile
    from mispec.planning.graph import plan_json
    from mispec.store.leases import Lease
    from mispec.store.provenance import build_provenance, index_entry, new_run_id, utc_now
    from mispec.store.run_folder import RunFolder, default_run_dir
    from mispec.store.store import Store
    from mispec.store.write_errors import translate_write_errors

    t0 = time.perf_counter()
    started = utc_now()
    if out is not None:
        from mispec.store.store import check_run_dir

        check_run_dir(out)  # before any work: a URL or a file is refused at once
    profile = load_profile(executor)
    planned = plan(spec, store=store or profile.store)
    loaded, the_plan = planned.loaded, planned.plan
    st = Store(planned.store_dir)
    st.ensure_writable()
    ctx = RunContext(
        the_plan, loaded.base_dir, st, device=profile.device, batch_size=profile.batch_size
    )

    def execute() -> None:
        from mispec.execute.executor import executor_class, walk

        walk(ctx, executor_class(profile.kind)(profile), progress=progress)

    def execute_round(round_plan: Plan) -> None:  # a refine: round
        ctx.close()
        ctx.plan = round_plan
        lease.hold(plan_json(round_plan))
        execute()

    folder = RunFolder(Path(out).resolve() if out else default_run_dir(loaded))
    run_id = new_run_id()
    lease = Lease(st.root)  # gc keeps what this run reads while it runs
    with translate_write_errors(st.root, folder.path), contextlib.closing(lease):
        lease.hold(plan_json(the_plan))
        execute()
        if planned.refinement is not None:
            from mispec.execute.refine import refine

            the_plan = refine(
                the_plan, planned.refinement, ctx.read_cell, _replanner(loaded), execute_round
            )
        entry = index_entry(run_id, loaded, the_plan, folder.path, started)
        # nothing computed and the run folder already holds this run: leave it untouched
        current = None if _did_work(ctx) else folder.unchanged_provenance(loaded, the_plan)
        if current is not None:
            summary = list(current["summary"])
            folder.remove_stale_staging()
            st.record_run({**entry, "unchanged": True, "same_as": current.get("run_id")})
        else:
            from mispec.results.summary import summarize

            tree = _assemble(the_plan, st, execute, ctx.fresh)
            summary = summarize(tree)
            if planned.refinement is not None:
                summary += planned.refinement.lines()
            provenance = build_provenance(
                ctx,
                profile,
                loaded,
                run_id=run_id,
                started=started,
                seconds=time.perf_counter() - t0,
                summary=summary,
            )
            folder.write(tree, loaded, the_plan, provenance)
            st.record_run(entry)
    return RunResult(
        folder.path,
        folder.results_path,
        asdict(ctx.counters),
        time.perf_counter() - t0,
        _did_work(ctx),
        summary,
    )


_WORK_COUNTERS = ("forward_passes", "cells_computed", "reductions_computed", "training_steps")


def _did_work(ctx: RunContext) -> bool:
    counters = asdict(ctx.counters)
    return any(counters[k] for k in _WORK_COUNTERS)


def _assemble(
    the_plan: Plan, st: Store, execute: Callable[[], None], fresh: dict[str, Any]
) -> xr.DataTree:
    """Assemble the results (``fresh``: the cells this run computed, kept in memory); a cell
    found corrupt on reading (removed with a warning by the store) or missing is computed
    again, once, instead of failing the run."""
    import warnings

    from mispec.planning.nodes import CellNode, ReductionNode
    from mispec.results.assemble import assemble

    try:
        return assemble(the_plan, st, fresh)
    except ResultsError:
        lost = [
            n
            for n in the_plan.nodes(CellNode) + the_plan.nodes(ReductionNode)
            if st.cells.read(n.key) is None
        ]
        if not lost:
            raise
        warnings.warn(
            f"mispec: {len(lost)} result(s) were missing or corrupt in the store; "
            "computing them again",
            stacklevel=2,
        )
        execute()
        return assemble(the_plan, st, fresh)


def open_results(path: str | Path) -> xr.DataTree:
    """The results ``DataTree`` of a run folder or its ``results.zarr``."""
    import xarray as xr

    p = Path(path)
    if (p / "results.zarr").exists():
        p = p / "results.zarr"
    if not p.exists():
        raise ResultsError(f"no results at {p.resolve()}: run `mispec run SPEC` first")
    if not (p / "zarr.json").is_file():
        raise ResultsError(
            f"{p.resolve()} is not a mispec run folder or results.zarr "
            "(expected runs/<name>/ holding results.zarr)"
        )
    import warnings

    from mispec.store.checksums import check_run_folder

    check_run_folder(p.parent)  # every byte read below verifies, or it is refused
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return xr.open_datatree(p, engine="zarr")
        except (OSError, ValueError, KeyError) as exc:  # zarr errors are ValueErrors
            raise ResultsError(
                f"cannot read the results at {p.resolve()} ({type(exc).__name__}: {exc}); "
                "re-run `mispec run SPEC` to write them again"
            ) from exc
