"""The planner: ``Spec`` + ``Resolution`` → a ``networkx.DiGraph`` of content-keyed nodes.

Pure: it loads no model and touches no file. Node keys chain: a checkpoint's identity and a
prompt set's identity make a forward key; a metric cell's key hashes its function, version (a plugin's code) and
args with the keys it reads; a reduction's key hashes the keys of every step it consumes. So a
changed argument invalidates exactly the nodes downstream of it.

The graph is what runs: executors walk :meth:`Plan.work` (training, checkpoint groups and
reductions, with the dependencies the graph's edges imply) and a group computes the cells
that are its successors (see :mod:`mispec.planning.nodes` for the kinds and edges).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import networkx as nx

from mispec.errors import PlanError
from mispec.hashing import content_key
from mispec.metrics.core import MetricDef, get_metric
from mispec.planning.cells import CellPlanner, check_groups_acyclic
from mispec.planning.nodes import (
    ASSEMBLE_ID,
    AssembleNode,
    CellNode,
    ForwardNode,
    GroupNode,
    Node,
    PromptsNode,
    ReductionNode,
    TrainNode,
    WorkNode,
    group_id,
    prompts_id,
    reduction_id,
    series_label,
    train_id,
)
from mispec.planning.resolve import Resolution
from mispec.spec.schema import Spec

N = TypeVar("N", bound=Node)


@dataclass(frozen=True)
class Plan:
    spec: Spec
    resolution: Resolution
    graph: nx.DiGraph
    metric_defs: dict[str, MetricDef]
    metric_order: tuple[str, ...]  # the metric DAG in topological order
    granularity: dict[str, str]  # metric -> "group" | "series"
    key: str
    base_dir: Path  # where the spec's relative paths resolve

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts().items())
        return f"<Plan '{self.spec.name}' {self.key}: {counts}>"

    def node(self, node_id: str) -> Node:
        node: Node = self.graph.nodes[node_id]["node"]
        return node

    @overload
    def nodes(self) -> list[Node]: ...
    @overload
    def nodes(self, kind: type[N]) -> list[N]: ...
    def nodes(self, kind: type[Any] | None = None) -> list[Any]:
        """Every node, or every node of one kind (``plan.nodes(CellNode)``)."""
        out = [d["node"] for _, d in self.graph.nodes(data=True)]
        return out if kind is None else [n for n in out if isinstance(n, kind)]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for node in self.nodes():
            out[node.kind] += 1
        return dict(out)

    # ------------------------------------------------------------------ work
    def work(self) -> nx.DiGraph:
        """The work graph: training, group and reduction nodes, with an edge wherever one
        needs what another produces (through the cells and forwards a group owns). Built
        once per plan (a plan never changes); callers must not modify it."""
        cached = self.__dict__.get("_work")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        g = self.graph
        work = nx.DiGraph()
        for node in self.nodes():
            if isinstance(node, TrainNode | GroupNode | ReductionNode):
                work.add_node(node.id, node=node)
        for u, v in g.edges:
            a, b = self.owner(u), self.owner(v)
            if a is not None and b is not None and a != b:
                work.add_edge(a, b)
        self.__dict__["_work"] = work  # frozen dataclass: cache beside the fields
        return work

    def owner(self, node_id: str) -> str | None:
        """The work node that computes ``node_id``: a cell's or forward's group, a work node
        itself; None for prompt sets and the assembly."""
        node = self.node(node_id)
        if isinstance(node, TrainNode | GroupNode | ReductionNode):
            return node.id
        if isinstance(node, CellNode | ForwardNode):
            return self.group_of(node).id
        return None

    def group_of(self, node: CellNode | ForwardNode) -> GroupNode:
        """The checkpoint group a cell or forward pass belongs to."""
        group = self.node(group_id(node.model, node.seed, node.step))
        assert isinstance(group, GroupNode)
        return group

    def work_order(self) -> list[WorkNode]:
        """Work nodes in a dependency order that finishes one (model, seed) before the next
        (so one model stays loaded): its training, its groups by step, its reductions."""
        rank = {m: i for i, m in enumerate(self.metric_order)}

        def sort_key(node_id: str) -> tuple[Any, ...]:
            n = self.node(node_id)
            if isinstance(n, TrainNode):
                return (n.model, n.seed, 0, 0)
            if isinstance(n, GroupNode):
                return (n.model, n.seed, 1, n.step)
            assert isinstance(n, ReductionNode)
            return (n.model, n.seed, 2, rank[n.metric])

        work = self.work()
        return [work.nodes[i]["node"] for i in nx.lexicographical_topological_sort(work, sort_key)]

    def cells(self, group: GroupNode) -> list[CellNode]:
        """The cells of a checkpoint group, in metric topological order."""
        rank = {m: i for i, m in enumerate(self.metric_order)}
        cells = [n for n in self.successors(group.id, CellNode)]
        return sorted(cells, key=lambda c: rank[c.metric])

    def successors(self, node_id: str, kind: type[N]) -> Iterable[N]:
        for s in self.graph.successors(node_id):
            node = self.graph.nodes[s]["node"]
            if isinstance(node, kind):
                yield node

    def inputs(self, node: CellNode | ReductionNode) -> dict[str, list[Node]]:
        """A cell's or reduction's metric inputs: parameter -> the nodes it reads."""
        if isinstance(node, CellNode):
            return {p: [self.node(u)] for p, u in node.inputs}
        return {p: [self.node(u) for u in ups] for p, ups in node.inputs}


def build_plan(spec: Spec, resolution: Resolution, base_dir: Path | None = None) -> Plan:
    from mispec.metrics.dag import build_metric_graph

    defs = {name: get_metric(m.fn) for name, m in spec.metrics.items()}
    metric_graph = build_metric_graph(spec.metrics, defs)  # PlanError on a cycle
    if metric_graph.problems:
        raise PlanError(
            "; ".join(f"{'.'.join(map(str, p.path))}: {p.message}" for p in metric_graph.problems)
        )
    order, granularity = metric_graph.order, metric_graph.granularity
    g = nx.DiGraph()

    def add(node: Node, after: Iterable[str] = ()) -> None:
        g.add_node(node.id, node=node)
        for upstream in after:
            g.add_edge(upstream, node.id)

    for pname, pkey in resolution.prompt_ids.items():
        add(PromptsNode(prompts_id(pname), pkey, pname))

    cells = CellPlanner(spec, resolution, defs, order, granularity)
    for (model, seed), series in sorted(resolution.series.items()):
        train: list[str] = []
        if series.training_identity is not None:
            tid = train_id(model, seed)
            add(
                TrainNode(
                    tid, content_key("train", series.training_identity, series.steps), model, seed
                )
            )
            train = [tid]
        here = cells.metrics_on(model)
        group_cells: dict[str, list[str]] = defaultdict(list)  # metric -> cell ids over steps
        for step, ckpt_key in zip(series.steps, series.checkpoint_ids, strict=True):
            gid = group_id(model, seed, step)
            add(GroupNode(gid, ckpt_key, model, seed, step, spec.models[model].dtype), train)
            for fnode in cells.forwards(model, seed, step).values():
                add(fnode, [gid, prompts_id(fnode.prompts)])
            for name in here:
                if granularity[name] != "group":
                    continue
                for cell in cells.cells_at(name, model, seed, step):
                    after = [gid]
                    if cell.forward is not None:
                        after.append(cell.forward)
                    elif defs[name].kind == "intervention":
                        after.append(prompts_id(cell.prompts or ""))
                    after.extend(sorted(u for _, u in cell.inputs))
                    add(cell, after)
                    group_cells[name].append(cell.id)
        # series-level: reductions over step, and metrics derived from them
        series_keys: dict[str, str] = {}
        for name in here:
            if granularity[name] != "series":
                continue
            mdef, m, args = defs[name], spec.metrics[name], cells.args[name]
            ups_by_param: dict[str, tuple[str, ...]] = {}
            key_parts: dict[str, Any] = {}
            for p, ref in m.input_metrics().items():
                if granularity[ref] == "group":
                    ups_by_param[p] = tuple(group_cells[ref])
                    key_parts[p] = [g.nodes[c]["node"].key for c in ups_by_param[p]]
                else:
                    ups_by_param[p] = (reduction_id(ref, model, seed),)
                    key_parts[p] = series_keys[ref]
            key = content_key(
                "reduction",
                mdef.name,
                mdef.key_version,
                args,
                key_parts,
                list(series.steps),
            )
            series_keys[name] = key
            add(
                ReductionNode(
                    reduction_id(name, model, seed),
                    key,
                    model,
                    seed,
                    name,
                    tuple(sorted(ups_by_param.items())),
                    args,
                ),
                sorted({u for us in ups_by_param.values() for u in us}),
            )
    for (model, seed), series in sorted(resolution.series.items()):  # a run built on another
        source = resolution.sources.get(model)
        for upstream in source.depends_on(seed) if source is not None else ():
            if series.training_identity is not None and train_id(*upstream) in g:
                g.add_edge(train_id(*upstream), train_id(model, seed))
    results = [n for n, d in g.nodes(data=True) if isinstance(d["node"], CellNode | ReductionNode)]
    plan_key = content_key("assemble", spec.name, sorted(g.nodes[n]["node"].key for n in results))
    add(AssembleNode(ASSEMBLE_ID, plan_key), sorted(results))
    plan = Plan(
        spec, resolution, g, defs, order, dict(granularity), plan_key, Path(base_dir or Path.cwd())
    )
    if cells.crossing:
        check_groups_acyclic(plan.work())
    return plan


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.spec.name,
        "key": plan.key,
        "counts": plan.counts(),
        "series": {
            series_label(m, s): {
                "steps": list(ser.steps),
                "checkpoint_keys": list(ser.checkpoint_ids),
                # the trained series' checkpoint folder in the store (None: not trained by
                # mispec); what ``mispec gc`` keeps for this run
                "training_identity": ser.training_identity,
            }
            for (m, s), ser in sorted(plan.resolution.series.items())
        },
        "nodes": [n.to_json() for n in plan.nodes()],
    }
