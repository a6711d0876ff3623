"""The planner: ``Spec`` + ``Resolution`` → a ``networkx.DiGraph`` of content-keyed nodes.

Pure: it loads no model and touches no file. Node keys chain: a checkpoint's identity and a
prompt set's identity make a forward key; a metric cell's key hashes its function, version and
args with the keys it reads; a reduction's key hashes the keys of every step it consumes. So a
changed argument invalidates exactly the nodes downstream of it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import networkx as nx

from mispec.errors import PlanError
from mispec.hashing import content_key
from mispec.metrics.core import MetricDef, get_metric
from mispec.planning.nodes import Node, group_id, series_id
from mispec.planning.resolve import Resolution
from mispec.spec.schema import Spec

_POLICY_RANK = {"store": 2, "float16": 1, "skip": 0}


@dataclass
class Plan:
    spec: Spec
    resolution: Resolution
    graph: nx.DiGraph
    metric_defs: dict[str, MetricDef]
    granularity: dict[str, str]  # metric -> "group" | "series"
    key: str
    base_dir: Any = None  # where the spec's relative paths resolve (set by the API)

    def node(self, node_id: str) -> Node:
        return self.graph.nodes[node_id]["node"]

    def nodes(self, kind: str | None = None) -> list[Node]:
        return [
            d["node"]
            for _, d in self.graph.nodes(data=True)
            if kind is None or d["node"].kind == kind
        ]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for node in self.nodes():
            out[node.kind] += 1
        return dict(out)

    def metric_order(self) -> list[str]:
        g = nx.DiGraph()
        g.add_nodes_from(self.spec.metrics)
        for name, m in self.spec.metrics.items():
            for ref in m.inputs.values():
                g.add_edge(ref, name)
        return list(nx.lexicographical_topological_sort(g))


def build_plan(spec: Spec, resolution: Resolution) -> Plan:
    from mispec.metrics.dag import find_cycle

    cycle = find_cycle(spec.metrics)
    if cycle:
        raise PlanError("metric inputs form a cycle: " + " -> ".join(cycle))
    defs = {name: get_metric(m.fn) for name, m in spec.metrics.items()}
    granularity = _granularity(spec, defs)
    g = nx.DiGraph()

    def add(node: Node, after: list[str] = ()) -> Node:  # type: ignore[assignment]
        g.add_node(node.id, node=node)
        for upstream in after:
            g.add_edge(upstream, node.id)
        return node

    for pname, pkey in resolution.prompt_ids.items():
        add(Node(f"prompts:{pname}", "prompts", pkey, prompts=pname))

    hook_policy = _hook_policies(spec, defs)
    order = _topo(spec)
    for (model, seed), series in sorted(resolution.series.items()):
        mspec = spec.models[model]
        train_id = None
        if series.training_identity is not None:
            train_id = f"train:{series_id(model, seed)}"
            add(
                Node(
                    train_id,
                    "train",
                    content_key("train", series.training_identity, series.steps),
                    model=model,
                    seed=seed,
                )
            )
        metrics_here = [
            m for m in order if spec.metrics[m].models is None or model in spec.metrics[m].models
        ]
        group_cells: dict[str, list[str]] = defaultdict(list)  # metric -> cell ids over steps
        for step, ckpt_key in zip(series.steps, series.checkpoint_ids, strict=True):
            gid = group_id(model, seed, step)
            ckpt = add(
                Node(f"ckpt:{gid}", "checkpoint", ckpt_key, model=model, seed=seed, step=step),
                [train_id] if train_id else [],
            )
            forwards: dict[str, list[str]] = defaultdict(list)  # prompts -> metrics
            cell_keys: dict[str, str] = {}
            for name in metrics_here:
                if granularity[name] != "group":
                    continue
                mdef, m = defs[name], spec.metrics[name]
                if mdef.kind == "activation":
                    forwards[m.prompts].append(name)  # type: ignore[index]
            forward_nodes: dict[str, Node] = {}
            for pname, names in sorted(forwards.items()):
                hooks = sorted({h for n in names for h in defs[n].hooks_for(spec.metrics[n].args)})
                policies = tuple((h, hook_policy[h]) for h in hooks)
                fkey = content_key(
                    "forward",
                    ckpt_key,
                    resolution.prompt_ids[pname],
                    mspec.dtype,
                    resolution.source_ids[model],
                )
                forward_nodes[pname] = add(
                    Node(
                        f"forward:{gid}/{pname}",
                        "forward",
                        fkey,
                        model=model,
                        seed=seed,
                        step=step,
                        prompts=pname,
                        hooks=policies,
                    ),
                    [ckpt.id, f"prompts:{pname}"],
                )
            for name in metrics_here:
                if granularity[name] != "group":
                    continue
                mdef, m = defs[name], spec.metrics[name]
                args = mdef.bind_args(m.args)
                common = ("cell", mdef.name, mdef.version, args)
                after: list[str]
                inputs: tuple[tuple[str, tuple[str, ...]], ...] = ()
                fwd = None
                if mdef.kind == "activation":
                    fnode = forward_nodes[m.prompts]  # type: ignore[index]
                    mine = {h: p for h, p in fnode.hooks if h in mdef.hooks_for(m.args)}
                    key = content_key(
                        *common, fnode.key, {h: p == "float16" for h, p in mine.items()}
                    )
                    after, fwd = [fnode.id], fnode.id
                elif mdef.kind == "intervention":
                    key = content_key(
                        *common,
                        ckpt_key,
                        resolution.prompt_ids[m.prompts],  # type: ignore[index]
                        mspec.dtype,
                        resolution.source_ids[model],
                    )
                    after = [ckpt.id, f"prompts:{m.prompts}"]
                elif mdef.kind == "weights":
                    key = content_key(*common, ckpt_key, mspec.dtype)
                    after = [ckpt.id]
                else:  # derived, same group
                    ups = {p: f"cell:{name_ref}/{gid}" for p, name_ref in m.inputs.items()}
                    key = content_key(
                        *common, {p: cell_keys[spec.metrics[name].inputs[p]] for p in ups}
                    )
                    after = sorted(ups.values())
                    inputs = tuple((p, (u,)) for p, u in sorted(ups.items()))
                cell_keys[name] = key
                cid = f"cell:{name}/{gid}"
                add(
                    Node(
                        cid,
                        "cell",
                        key,
                        model=model,
                        seed=seed,
                        step=step,
                        prompts=m.prompts,
                        metric=name,
                        inputs=inputs,
                        forward=fwd,
                    ),
                    after,
                )
                group_cells[name].append(cid)
        # series-level: reductions over step, and metrics derived from them
        series_keys: dict[str, str] = {}
        for name in metrics_here:
            if granularity[name] != "series":
                continue
            mdef, m = defs[name], spec.metrics[name]
            args = mdef.bind_args(m.args)
            ups: dict[str, tuple[str, ...]] = {}
            key_parts: dict[str, Any] = {}
            for p, ref in m.inputs.items():
                if granularity[ref] == "group":
                    ups[p] = tuple(group_cells[ref])
                    key_parts[p] = [g.nodes[c]["node"].key for c in ups[p]]
                else:
                    ups[p] = (f"reduce:{ref}/{series_id(model, seed)}",)
                    key_parts[p] = series_keys[ref]
            key = content_key(
                "reduction", mdef.name, mdef.version, args, key_parts, list(series.steps)
            )
            series_keys[name] = key
            add(
                Node(
                    f"reduce:{name}/{series_id(model, seed)}",
                    "reduction",
                    key,
                    model=model,
                    seed=seed,
                    metric=name,
                    inputs=tuple(sorted(ups.items())),
                ),
                sorted({u for us in ups.values() for u in us}),
            )
    results = [n for n, d in g.nodes(data=True) if d["node"].kind in ("cell", "reduction")]
    plan_key = content_key("assemble", spec.name, sorted(g.nodes[n]["node"].key for n in results))
    add(Node("assemble", "assemble", plan_key), sorted(results))
    return Plan(spec, resolution, g, defs, granularity, plan_key)


def _topo(spec: Spec) -> list[str]:
    g = nx.DiGraph()
    g.add_nodes_from(spec.metrics)
    g.add_edges_from((ref, name) for name, m in spec.metrics.items() for ref in m.inputs.values())
    return list(nx.lexicographical_topological_sort(g))


def _granularity(spec: Spec, defs: dict[str, MetricDef]) -> dict[str, str]:
    """'group' metrics have one cell per checkpoint; 'series' ones one per (model, seed)."""
    out: dict[str, str] = {}
    for name in _topo(spec):
        mdef, m = defs[name], spec.metrics[name]
        kinds = {out[ref] for ref in m.inputs.values()}
        if mdef.kind == "reduction":
            if "series" in kinds:
                raise PlanError(
                    f"metrics.{name}: '{m.fn}' reduces over step, but an input "
                    "has no step axis (it is itself a reduction)"
                )
            out[name] = "series"
        elif mdef.kind == "derived":
            if len(kinds) > 1:
                raise PlanError(f"metrics.{name}: mixes per-checkpoint and per-series inputs")
            out[name] = kinds.pop() if kinds else "group"
        else:
            out[name] = "group"
    return out


def _hook_policies(spec: Spec, defs: dict[str, MetricDef]) -> dict[str, str]:
    """Storage policy per hook template: the spec's top-level ``cache:`` entry wins; otherwise
    the most keeping of the policies of the metrics that read it (store > float16 > skip)."""
    policies: dict[str, str] = {}
    for name, m in spec.metrics.items():
        mdef = defs[name]
        if mdef.kind != "activation":
            continue
        for hook in mdef.hooks_for(m.args):
            wanted = m.cache or "store"
            if hook not in policies or _POLICY_RANK[wanted] > _POLICY_RANK[policies[hook]]:
                policies[hook] = wanted
    for hook, policy in spec.cache.items():
        policies[hook] = policy
    return policies


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.spec.name,
        "key": plan.key,
        "counts": plan.counts(),
        "series": {
            series_id(m, s): {"steps": list(ser.steps), "checkpoint_keys": list(ser.checkpoint_ids)}
            for (m, s), ser in sorted(plan.resolution.series.items())
        },
        "nodes": [n.to_json() for n in plan.nodes()],
    }
