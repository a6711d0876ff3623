"""Check the ``claims:`` block against the spec, before anything runs: every metric, model,
seed, dim and step a claim names exists where it reads it, and the two sides of a
``before`` or ``compare`` are comparable (the same units; ``before`` compares event steps).
Each problem is located at the claim's key in the YAML. Nothing is executed: the dims are
those each metric declares (``mispec.metrics.dag``), unknown ones are not held against it.
"""

from __future__ import annotations

from typing import Any

from mispec.errors import Problem
from mispec.registry import did_you_mean
from mispec.spec.claims import ClaimSpec, Operand
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import KeyPath, SourceMap

PAIR_DIMS = {"seeds": ("seed_b",), "steps": ("step_b",)}


def claim_problems(spec: Spec, source: SourceMap) -> list[Problem]:
    """Every problem of ``spec``'s claims (none when it states none)."""
    if not spec.claims:
        return []
    facts = _MetricFacts(spec)
    problems: list[Problem] = []
    for name, claim in spec.claims.items():
        for where, op in claim.operands():
            problems.extend(facts.operand(op, ("claims", name, *where), source))
        problems.extend(_check_over(claim, facts, ("claims", name), source))
        problems.extend(_check_sides(claim, facts, ("claims", name), source))
    return problems


class _MetricFacts:
    """What validation knows of each metric before running: its dims, units, granularity,
    and the models (or pair nodes) whose results hold it."""

    def __init__(self, spec: Spec) -> None:
        from mispec.metrics.core import get_metric
        from mispec.metrics.dag import build_metric_graph

        self.spec = spec
        self.defs: dict[str, Any] = {}
        for name, m in spec.metrics.items():
            try:
                self.defs[name] = get_metric(m.fn)
            except Exception:  # an unknown function: reported by the metric checks
                continue
        try:
            self.graph: Any = build_metric_graph(spec.metrics, self.defs)
        except Exception:  # a cycle: reported by the metric checks
            self.graph = None

    def homes(self, metric: str) -> list[str]:
        """The result nodes holding ``metric``: a sweep's points are one node, under the swept
        entry's name (``mispec.results.assemble_sweeps``)."""
        from mispec.spec.sweep import sweep_point

        m = self.spec.metrics[metric]
        if m.pairs is not None and m.pairs.models is not None:
            return ["{}_vs_{}".format(*m.pairs.models)]
        out: list[str] = []
        for name in m.models or self.spec.models:
            point = sweep_point(self.spec.models.get(name))
            home = point.of if point is not None else name
            if home not in out:
                out.append(home)
        return out

    def entry(self, home: str) -> Any:
        """The model entry behind a result node (a sweep's: its first point), or None."""
        from mispec.spec.sweep import sweep_point

        if home in self.spec.models:
            return self.spec.models[home]
        points = [e for e in self.spec.models.values() if getattr(sweep_point(e), "of", 0) == home]
        return points[0] if points else None

    def sweep_dims(self, home: str) -> set[str]:
        """The dims a sweep's node has beyond its metrics' own (none for another node)."""
        from mispec.spec.sweep import sweep_point

        point = sweep_point(self.entry(home))
        return set(point.dims.values()) if point is not None else set()

    def dims(self, metric: str) -> set[str] | None:
        """Every dim its results have, or None when they are not known before running."""
        if self.graph is None or self.graph.dims.get(metric) is None:
            return None
        m = self.spec.metrics[metric]
        dims = set(self.graph.dims[metric]) | {"seed"}
        if self.graph.granularity.get(metric) == "group":
            dims.add("step")
        if m.pairs is not None:
            for key, extra in PAIR_DIMS.items():
                if getattr(m.pairs, key) is not None:
                    dims.update(extra)
        for home in self.homes(metric):  # a sweep's dims
            dims.update(self.sweep_dims(home))
        return dims

    def units(self, metric: str) -> str | None:
        mdef = self.defs.get(metric)
        if mdef is None:
            return None
        try:
            return str(mdef.units_for(self.spec.metrics[metric].args)) or None
        except Exception:
            return None

    def operand(self, op: Operand, at: KeyPath, source: SourceMap) -> list[Problem]:
        if op.metric not in self.spec.metrics:
            hint = did_you_mean(op.metric, list(self.spec.metrics))
            return [source.problem(at, f"unknown metric '{op.metric}'{hint}")]
        homes = self.homes(op.metric)
        if op.model is not None and op.model not in homes:
            known = [*self.spec.models, *homes]
            where = "no model" if op.model not in known else "no results of this metric under"
            return [
                source.problem(
                    at,
                    f"{where} '{op.model}' for '{op.metric}' (it is computed for "
                    f"{homes}){did_you_mean(op.model, homes)}",
                )
            ]
        if op.model is None and len(homes) > 1:
            return [
                source.problem(
                    at,
                    f"'{op.metric}' is computed for several models {homes}: name one as "
                    f"'<model>/{op.metric}' or model: <model>",
                )
            ]
        problems = []
        dims = self.dims(op.metric)
        model = op.model or homes[0]
        for dim, label in op.where.items():
            if dims is not None and dim not in dims:
                problems.append(
                    source.problem(
                        (*at, "where", dim),
                        f"'{op.metric}' has no dim '{dim}' (its dims: {sorted(dims)})"
                        f"{did_you_mean(dim, sorted(dims))}",
                    )
                )
            elif dim == "seed" and self.entry(model) is not None:
                seeds = list(self.entry(model).seeds)
                if label not in seeds:
                    problems.append(
                        source.problem(
                            (*at, "where", dim),
                            f"model '{model}' has no seed {label!r} (seeds {seeds})",
                        )
                    )
        if op.step is not None and dims is not None and "step" not in dims:
            problems.append(
                source.problem(
                    at,
                    f"'{op.metric}' has no step dim (one value per seed): remove `step:`",
                )
            )
        return problems


def _check_over(
    claim: ClaimSpec, facts: _MetricFacts, at: KeyPath, source: SourceMap
) -> list[Problem]:
    problems = []
    for key in [k for k in claim.at if k not in claim.over]:
        problems.append(
            source.problem((*at, "at"), f"'{key}' is not one of the dims in over: {claim.over}")
        )
    if not claim.over:
        return problems
    op = claim.operands()[0][1]
    dims = facts.dims(op.metric) if op.metric in facts.spec.metrics else None
    if dims is None:
        return problems
    left = dims - set(op.where) - ({"step"} if op.step is not None else set())
    for dim in claim.over:
        if dim not in left:
            problems.append(
                source.problem(
                    (*at, "over"),
                    f"'{op.metric}' has no dim '{dim}' left to run over (its dims: "
                    f"{sorted(left)}){did_you_mean(dim, sorted(left))}",
                )
            )
    return problems


def _check_sides(
    claim: ClaimSpec, facts: _MetricFacts, at: KeyPath, source: SourceMap
) -> list[Problem]:
    """The two sides of ``before`` / ``compare`` have the same units (``before``: steps)."""
    if claim.kind not in ("before", "compare"):
        return []
    ops = [op for _, op in claim.operands()]
    if any(op.metric not in facts.spec.metrics for op in ops):
        return []
    units = [facts.units(op.metric) for op in ops]
    if claim.kind == "before" and any(u not in (None, "step") for u in units):
        return [
            source.problem(
                (*at, "before"),
                f"before compares event steps (metrics in units of 'step', e.g. transition_step "
                f"or crossing_step); got {ops[0].metric} ({units[0]}), {ops[1].metric} ({units[1]})",
            )
        ]
    if None not in units and units[0] != units[1]:
        return [
            source.problem(
                (*at, "compare"),
                f"cannot compare {ops[0].metric} ({units[0]}) with {ops[1].metric} "
                f"({units[1]}): different units",
            )
        ]
    return []
