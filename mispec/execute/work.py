"""The plan as work: training per (model, seed), checkpoint groups, reductions, in order.
Shared by the local and the Dask executors."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from mispec.planning.graph import Plan


@dataclass(frozen=True)
class GroupWork:
    model: str
    seed: int
    step: int
    cells: tuple[str, ...]


@dataclass(frozen=True)
class SeriesWork:
    model: str
    seed: int
    train: str | None  # train node id
    groups: tuple[GroupWork, ...]
    reductions: tuple[str, ...]  # reduction node ids in dependency order


def work_list(plan: Plan) -> list[SeriesWork]:
    cells: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    reductions: dict[tuple[str, int], list[str]] = defaultdict(list)
    order = {m: i for i, m in enumerate(plan.metric_order())}
    for node in plan.nodes():
        if node.kind == "cell":
            cells[(node.model, node.seed, node.step)].append(node.id)  # type: ignore[index]
        elif node.kind == "reduction":
            reductions[(node.model, node.seed)].append(node.id)  # type: ignore[index]
    out = []
    for (model, seed), series in sorted(plan.resolution.series.items()):
        train = f"train:{model}/s{seed}" if series.training_identity else None
        groups = tuple(
            GroupWork(
                model,
                seed,
                step,
                tuple(sorted(cells[(model, seed, step)], key=lambda c: order[plan.node(c).metric])),
            )
            for step in series.steps
            if cells[(model, seed, step)]
        )
        reds = tuple(sorted(reductions[(model, seed)], key=lambda r: order[plan.node(r).metric]))
        out.append(SeriesWork(model, seed, train, groups, reds))
    return out
