"""A ring of checkpoint groups waiting on each other, found before compute.

A metric that reads another checkpoint's result (``inputs: {x: {metric: m, seed: 1}}``, a
fixed ``step``, another ``model``) makes its checkpoint group wait on that checkpoint's group;
each group runs as one unit, so a ring of such waits (seed 0 reads seed 1 through one metric,
seed 1 reads seed 0 through another) can never run. The planner refuses it
(``mispec.planning.cells.check_groups_acyclic``); this check finds the same ring at
``validate``, at the input that closes it, for every model whose steps are known from local
files (a pretrained family's revisions may need the hub: the plan checks those).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mispec.errors import CheckpointError, PlanError, Problem, UserError
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import KeyPath, SourceMap

Group = tuple[str, int, int]  # (model, seed, step)


def group_ring_problems(spec: Spec, source: SourceMap, base_dir: Path) -> list[Problem]:
    if all(ref.is_local for m in spec.metrics.values() for ref in m.input_refs().values()):
        return []
    try:
        steps = _known_steps(spec, base_dir)
        per_checkpoint = _per_checkpoint_metrics(spec, base_dir)
    except (UserError, CheckpointError, PlanError):
        return []  # reported by the other checks
    edges = _waits(spec, steps, per_checkpoint)
    ring = _find_ring(edges)
    if not ring:
        return []
    name, param = edges[ring[-1]]
    groups = " -> ".join(_label(g) for g, _ in ring) + " -> " + _label(ring[0][0])
    at: KeyPath = ("metrics", name, "inputs", param)
    return [
        source.problem(
            at,
            "metric inputs from other checkpoints make checkpoint groups wait on each other in "
            f"a ring ({groups}), which cannot run (each group runs as one unit): read them "
            "in one direction only (e.g. each seed from a later one)",
        )
    ]


def _label(group: Group) -> str:
    model, seed, step = group
    return f"{model}/s{seed}/step{step}"


def _known_steps(spec: Spec, base_dir: Path) -> dict[tuple[str, int], list[int]]:
    from mispec.sources import sources_for
    from mispec.validation.preflight import _local_steps

    return _local_steps(spec, sources_for(dict(spec.models), base_dir))


def _per_checkpoint_metrics(spec: Spec, base_dir: Path) -> set[str]:
    """Metrics computed inside a checkpoint group (not reductions over ``step``)."""
    from mispec.metrics.core import METRICS, MetricDef, load_builtin_metrics
    from mispec.metrics.dag import build_metric_graph

    load_builtin_metrics()
    defs: dict[str, MetricDef] = {}
    for name, m in spec.metrics.items():
        mdef = METRICS.get_or_none(m.fn, base_dir)
        if isinstance(mdef, MetricDef):
            defs[name] = mdef
    graph = build_metric_graph(spec.metrics, defs)
    return {n for n, g in graph.granularity.items() if g == "group"}


def _waits(
    spec: Spec, steps: dict[tuple[str, int], list[int]], per_checkpoint: set[str]
) -> dict[tuple[Group, Group], tuple[str, str]]:
    """``(group read, group reading) -> (metric, input)`` for every read across groups."""
    edges: dict[tuple[Group, Group], tuple[str, str]] = {}
    for name, m in spec.metrics.items():
        if name not in per_checkpoint:
            continue
        for param, ref in m.input_refs().items():
            if ref.is_local or ref.metric not in spec.metrics:
                continue
            for reader in m.models or list(spec.models):
                target = ref.model or reader
                if target not in spec.models:
                    continue
                for seed in spec.models[reader].seeds:
                    t_seed = seed if ref.seed is None else ref.seed
                    theirs = steps.get((target, t_seed))
                    for step in steps.get((reader, seed), []):
                        t_step = _target_step(ref.step, step, theirs)
                        if t_step is None:
                            continue
                        here, there = (reader, seed, step), (target, t_seed, t_step)
                        if here != there:
                            edges.setdefault((there, here), (name, param))
    return edges


def _target_step(ref_step: Any, step: int, theirs: list[int] | None) -> int | None:
    if ref_step is None:
        return step
    if ref_step in ("first", "last"):
        if not theirs:
            return None
        return theirs[0] if ref_step == "first" else theirs[-1]
    return int(ref_step)


def _find_ring(
    edges: dict[tuple[Group, Group], tuple[str, str]],
) -> list[tuple[Group, Group]]:
    import networkx as nx

    graph = nx.DiGraph(list(edges))
    try:
        return [(u, v) for u, v in nx.find_cycle(graph)]
    except nx.NetworkXNoCycle:
        return []
