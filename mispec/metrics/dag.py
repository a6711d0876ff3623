"""The metric DAG of a spec, built once for the planner and for validation.

A spec's metrics read each other through ``inputs`` (``icl: {inputs: {per_token_loss:
per_token_loss}}`` is an edge ``per_token_loss -> icl``). From that graph and each metric's
``MetricDef`` this module works out, before anything runs:

* **order**: ``networkx.lexicographical_topological_sort`` over the edges, so inputs come
  before the metrics that read them and ties break by name (the planner builds its nodes in
  this order, so it must not change);
* **granularity**: a metric is ``"group"`` (one cell per checkpoint) or ``"series"`` (one
  result per model and seed). A reduction over ``step`` is per series and reads per-checkpoint
  inputs; a derived metric takes the granularity of its inputs, which must agree; every other
  kind is per checkpoint;
* **dims**: each metric's result dims (without the ``seed`` and ``step`` the executor adds),
  from its declared ``dims`` or its dims function (``MetricDef.dims_for``) applied to its
  inputs' dims; None where they are unknown before running;
* **problems**: what cannot run, each at the key path of the spec entry to fix: a reduction
  over a per-series input, a derived metric mixing granularities, an input without the dims
  the metric declares it needs (``InputDims``).

A metric whose ``MetricDef`` is missing (an unknown function, reported elsewhere) counts as
per-checkpoint with unknown dims, so one bad name does not cascade into more errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mispec.errors import PlanError

if TYPE_CHECKING:
    from mispec.metrics.core import InputDims, MetricDef
    from mispec.spec.metrics import MetricSpec

Granularity = Literal["group", "series"]
Dims = tuple[str, ...]


@dataclass(frozen=True)
class MetricProblem:
    """Why a metric cannot run as wired; ``path`` is its spec key path, e.g.
    ``("metrics", "icl", "inputs", "per_token_loss")``."""

    path: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class MetricGraph:
    order: tuple[str, ...]
    granularity: dict[str, Granularity]
    dims: dict[str, Dims | None]
    problems: tuple[MetricProblem, ...]


def find_cycle(metrics: Mapping[str, MetricSpec]) -> list[str] | None:
    """The first cycle among metric inputs, as ``[a, b, ..., a]``, or None (inputs naming
    unknown metrics are ignored: they are reported on their own)."""
    graph = {n: [r for r in m.input_metrics().values() if r in metrics] for n, m in metrics.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def build_metric_graph(
    metrics: Mapping[str, MetricSpec], defs: Mapping[str, MetricDef]
) -> MetricGraph:
    """Order, granularity, dims and problems of these metrics (``defs`` by metric name; a
    missing entry is an unknown function). Raises ``PlanError`` on a cycle."""
    import networkx as nx

    cycle = find_cycle(metrics)
    if cycle:
        raise PlanError("metric inputs form a cycle: " + " -> ".join(cycle))
    g = nx.DiGraph()
    g.add_nodes_from(metrics)
    g.add_edges_from(
        (ref, name)
        for name, m in metrics.items()
        for ref in m.input_metrics().values()
        if ref in metrics
    )
    order = tuple(nx.lexicographical_topological_sort(g))
    granularity: dict[str, Granularity] = {}
    dims: dict[str, Dims | None] = {}
    problems: list[MetricProblem] = []
    for name in order:
        m, mdef = metrics[name], defs.get(name)
        if mdef is None:
            granularity[name], dims[name] = "group", None
            continue
        granularity[name] = _granularity(name, metrics, mdef, granularity, problems)
        in_dims = {p: dims.get(ref) for p, ref in m.input_metrics().items()}
        _check_input_dims(name, metrics, mdef, in_dims, problems)
        try:
            dims[name] = mdef.dims_for(m.args, in_dims)
        except Exception as exc:  # a dims function that cannot take these args
            dims[name] = None
            problems.append(
                MetricProblem(
                    ("metrics", name, "args"),
                    f"cannot work out the dims of '{m.fn}' with these args: "
                    f"{type(exc).__name__}: {exc}",
                )
            )
    return MetricGraph(order, granularity, dims, tuple(problems))


def _granularity(
    name: str,
    metrics: Mapping[str, MetricSpec],
    mdef: MetricDef,
    known: Mapping[str, Granularity],
    problems: list[MetricProblem],
) -> Granularity:
    m = metrics[name]
    refs = m.input_metrics()
    kinds = {p: known.get(ref, "group") for p, ref in refs.items()}
    for p, r in m.input_refs().items():
        if r.is_local:
            continue
        if mdef.kind == "reduction":
            problems.append(
                MetricProblem(
                    ("metrics", name, "inputs", p),
                    f"'{m.fn}' reduces over a whole run's step axis; it reads its input's own "
                    "run: give the metric name alone (no step, seed or model)",
                )
            )
        elif kinds[p] == "series":
            problems.append(
                MetricProblem(
                    ("metrics", name, "inputs", p),
                    f"'{r.metric}' is one result per model and seed (no step axis): a step, "
                    "seed or model can only be chosen for a per-checkpoint metric",
                )
            )
            kinds[p] = "group"
    if mdef.kind == "reduction":
        for p, ref in refs.items():
            if kinds[p] == "series":
                problems.append(
                    MetricProblem(
                        ("metrics", name, "inputs", p),
                        f"'{m.fn}' reduces over the step axis, but '{ref}' has none (it is "
                        "itself one result per model and seed); give it a per-checkpoint metric",
                    )
                )
        return "series"
    if mdef.kind == "derived":
        if len(set(kinds.values())) > 1:
            group = sorted(refs[p] for p, k in kinds.items() if k == "group")
            series = sorted(refs[p] for p, k in kinds.items() if k != "group")
            problems.append(
                MetricProblem(
                    ("metrics", name, "inputs"),
                    f"mixes per-checkpoint inputs ({', '.join(group)}) with per-series ones "
                    f"({', '.join(series)}); a derived metric reads one kind",
                )
            )
        return next(iter(kinds.values()), "group")
    return "group"


def _check_input_dims(
    name: str,
    metrics: Mapping[str, MetricSpec],
    mdef: MetricDef,
    in_dims: Mapping[str, Dims | None],
    problems: list[MetricProblem],
) -> None:
    """Each input carries the dims the metric declares it needs (where they are known)."""
    m = metrics[name]
    for param, need in mdef.input_dims.items():
        ref, have = m.input_metrics().get(param), in_dims.get(param)
        if ref is None or have is None:
            continue
        missing = [d for d in _needed(mdef, need, m.args) if d not in have]
        if not missing:
            continue
        if need.arg is None:
            why = need.why or f"the dims {_shown(need.dims)} in its input '{param}'"
            problems.append(
                MetricProblem(
                    ("metrics", name, "inputs", param),
                    f"{m.fn} needs {why}, but '{ref}' ({metrics[ref].fn}) has dims {_shown(have)}",
                )
            )
        else:
            why = need.why or f"named in '{need.arg}'"
            problems.append(
                MetricProblem(
                    ("metrics", name, "args", need.arg),
                    f"'{ref}' has no dims {missing} {why} (its dims: {_shown(have)})",
                )
            )


def _needed(mdef: MetricDef, need: InputDims, args: Mapping[str, Any]) -> Dims:
    """The dims ``need`` asks for with these spec args."""
    if need.arg is None:
        return need.dims
    value = mdef.bind_args(args).get(need.arg) or ()
    return (value,) if isinstance(value, str) else tuple(value)


def _shown(dims: Dims) -> str:
    return "(" + ", ".join(dims) + ")" if dims else "no dims (one number per checkpoint)"
