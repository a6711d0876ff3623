"""The Python API — the CLI's twin: ``load_spec``, ``plan``, ``run``, ``open_results``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import ResultsError
from mispec.results.open import open_results
from mispec.results.planned import PlannedSpec, plan, replanner
from mispec.results.run_models import export_checkpoint, load_model
from mispec.spec.load import LoadedSpec
from mispec.validation.load import load_spec

if TYPE_CHECKING:
    import xarray as xr

    from mispec.execute.context import RunContext
    from mispec.planning.graph import Plan
    from mispec.results.claims import Verdict
    from mispec.store.lifecycle import GcReport
    from mispec.store.store import Store

__all__ = [
    "load_spec",
    "plan",
    "run",
    "check",
    "open_results",
    "gc",
    "load_model",
    "export_checkpoint",
    "RunResult",
    "PlannedSpec",
]


@dataclass
class RunResult:
    """What a run did: where its results are, its work counters, its headline summary."""

    run_dir: Path
    results_path: Path
    counters: dict[str, int]
    seconds: float
    did_work: bool
    summary: list[str] = field(default_factory=list)
    claims: list[Verdict] = field(default_factory=list)  # the spec's claims, checked

    @property
    def claims_failed(self) -> list[Verdict]:
        """The claims that failed, could not be evaluated, or passed against ``expect: fail``."""
        return [v for v in self.claims if v.failed]

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
    progress_every: float | None = None,
) -> RunResult:
    """Run a spec: train what is missing, compute what is not cached, assemble the results
    into ``runs/<name>/results.zarr`` beside the exact spec, plan and provenance.

    Progress (on stderr; none when ``progress`` is False): live bars in a terminal, else a
    plain line every ``progress_every`` seconds (default: ``$MISPEC_PROGRESS_EVERY``, else 30).

    A re-run that computes nothing, into a run folder that already holds this very run,
    leaves the folder as it is (no new ``history/`` entry) and is recorded in the run index
    as ``unchanged``."""
    from mispec.execute.context import RunContext
    from mispec.execute.profile import load_profile
    from mispec.planning.graph import plan_json
    from mispec.results.claims import check_claims
    from mispec.runtime.display import progress_every as checked_every
    from mispec.runtime.display import run_display
    from mispec.store.leases import Lease
    from mispec.store.provenance import build_provenance, index_entry, new_run_id, utc_now
    from mispec.store.run_folder import RunFolder, default_run_dir
    from mispec.store.store import Store
    from mispec.store.write_errors import translate_write_errors

    t0 = time.perf_counter()
    started = utc_now()
    every = checked_every(progress_every) if progress else None  # bad: refused before any work
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
    with (
        translate_write_errors(st.root, folder.path),
        contextlib.closing(lease),
        run_display(progress, every=every),  # one display for every round of the run
    ):
        lease.hold(plan_json(the_plan))
        execute()
        if planned.refinement is not None:
            from mispec.execute.refine import refine

            the_plan = refine(
                the_plan, planned.refinement, ctx.read_cell, replanner(loaded), execute_round
            )
        entry = index_entry(run_id, loaded, the_plan, folder.path, started)
        claims = loaded.spec.claims
        verdicts: list[Verdict] = []
        # nothing computed and the run folder already holds this run: leave it untouched
        current = None if _did_work(ctx) else folder.unchanged_provenance(loaded, the_plan)
        if current is not None:
            summary = list(current["summary"])
            folder.remove_stale_staging()
            if claims:  # checked again on the results the folder holds: no forward pass
                verdicts = check_claims(open_results(folder.results_path), claims)
                entry["claims"] = {v.name: v.status for v in verdicts}
            st.record_run({**entry, "unchanged": True, "same_as": current.get("run_id")})
        else:
            from mispec.results.summary import summarize

            tree = _assemble(the_plan, st, execute, ctx.fresh)
            summary = summarize(tree)
            verdicts = check_claims(tree, claims) if claims else []
            if planned.refinement is not None:
                summary += planned.refinement.lines()
            provenance = build_provenance(
                loaded,
                plan_key=ctx.plan.key,
                executor=profile.model_dump(mode="json"),
                counters=asdict(ctx.counters),
                store_root=ctx.store.root,
                run_id=run_id,
                started=started,
                seconds=time.perf_counter() - t0,
                summary=summary,
            )
            if verdicts:
                provenance["claims"] = [v.to_json() for v in verdicts]
                entry["claims"] = {v.name: v.status for v in verdicts}
            folder.write(tree, loaded, the_plan, provenance)
            st.record_run(entry)
    return RunResult(
        folder.path,
        folder.results_path,
        asdict(ctx.counters),
        time.perf_counter() - t0,
        _did_work(ctx),
        summary,
        verdicts,
    )


def check(run_dir: str | Path, spec: str | Path | None = None) -> list[Verdict]:
    """``mispec check``: the claims of a finished run (those of the ``spec.yaml`` it ran, or
    of ``spec``) checked again on its results. Reads results only."""
    import mispec.sources  # noqa: F401 (their entry classes join the schema's models: union)
    from mispec.errors import UserError
    from mispec.results.claims import check_claims
    from mispec.spec.load import read_spec_text

    folder = Path(run_dir)
    spec_path = Path(spec) if spec is not None else folder / "spec.yaml"
    if spec is not None:
        claims = load_spec(spec_path).spec.claims
    else:
        try:
            text = spec_path.read_text("utf-8")
        except OSError as exc:
            raise UserError(
                f"not a run folder (no spec.yaml): {folder.resolve()} ({exc})"
            ) from None
        claims = read_spec_text(text, str(spec_path))[0].claims
    if not claims:
        raise UserError(f"{spec_path}: the spec states no claims (add a claims: block)")
    return check_claims(open_results(folder), claims)


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


def gc(
    root: str | Path,
    *,
    keep: Iterable[str | Path] = (),
    dry_run: bool = True,
    grace: float = 3600,
) -> GcReport:
    """``mispec gc``: remove from the store at ``root`` what no recorded run, no run in
    progress and no spec in ``keep`` (planned as it would run now) references. ``dry_run``:
    report only. See ``mispec.store.lifecycle``."""
    from mispec.planning.graph import plan_json
    from mispec.store.lifecycle import gc as collect
    from mispec.store.run_refs import plan_refs

    kept = [plan_refs(plan_json(plan(s).plan), f"spec {s}") for s in keep]
    return collect(root, keep=kept, dry_run=dry_run, grace=grace)
