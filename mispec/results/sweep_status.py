"""What a plan's store holds of each sweep (``mispec.spec.sweep``): its points, how many are
complete in the store, and how much training the others still need — plain data, for
``mispec plan`` and ``PlannedSpec.to_json``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from mispec.planning.nodes import CellNode, ReductionNode
from mispec.spec.sweep import sweep_point


@dataclass
class SweepStatus:
    model: str  # the swept entry
    dims: dict[str, int]  # dim -> number of values
    points: int
    cached: int  # points whose every result is in the store
    training_points: int  # points with training left
    training_steps: int  # their steps to train, all seeds
    todo: list[dict[str, Any]] = field(default_factory=list)  # the points not cached: values

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        shape = " x ".join(f"{n} {d}" for d, n in self.dims.items())
        text = f"{self.model}: {self.points} points ({shape}), {self.cached} cached"
        if self.training_points:
            text += f", {self.training_points} to train (~{self.training_steps} steps in all)"
        return text


def sweep_status(plan: Any, status: Any, store: Any) -> list[SweepStatus]:
    """One :class:`SweepStatus` per swept entry of ``plan`` (``status``: its ``PlanStatus``;
    ``store``: the store or None)."""
    spec = plan.spec
    members: dict[str, list[str]] = defaultdict(list)
    for name, entry in spec.models.items():
        point = sweep_point(entry)
        if point is not None:
            members[point.of].append(name)
    if not members:
        return []
    missing: set[str] = set()
    for node in plan.nodes(CellNode) + plan.nodes(ReductionNode):
        if store is None or not store.cells.has(node.key):
            missing.add(node.model)
    out = []
    for swept, names in members.items():
        points = [sweep_point(spec.models[n]) for n in names]
        dims: dict[str, int] = {}
        for p in points:
            assert p is not None
            for key, dim in p.dims.items():
                if p.values[key] is not None and dim not in dims:
                    dims[dim] = len({repr(q.values[key]) for q in points if q is not None})
        steps = {
            n: sum(v for k, v in status.training_steps_todo.items() if k.rsplit("/s", 1)[0] == n)
            for n in names
        }
        todo = [
            dict(sweep_point(spec.models[n]).values)  # type: ignore[union-attr]
            for n in names
            if n in missing or steps[n]
        ]
        out.append(
            SweepStatus(
                swept,
                dims,
                len(names),
                len(names) - len(todo),
                sum(1 for n in names if steps[n]),
                sum(steps.values()),
                todo,
            )
        )
    return out
