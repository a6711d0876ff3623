"""The unit of work: one checkpoint group (model, seed, step).

Load the weights once; for each prompt set run ONE forward pass with the union of the hooks
that the missing cells need and the cache lacks (``names_filter``); compute the activation,
intervention, weight and derived metrics of that checkpoint; write their cells; drop
everything. Cached activations are reused, so a metric whose hooks are cached runs no forward
pass at all.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from mispec.errors import CacheError, MetricError
from mispec.execute.context import RunContext
from mispec.execute.work.invoke import call_metric
from mispec.planning.nodes import CellNode, ForwardNode, GroupNode, ReductionNode
from mispec.store.activations import stored_hook


def missing_cells(ctx: RunContext, cells: list[CellNode]) -> list[CellNode]:
    return [n for n in cells if n.key not in ctx.fresh and not ctx.store.cells.has(n.key)]


def _with_unreadable_inputs(
    ctx: RunContext, group: GroupNode, todo: list[CellNode], results: dict[str, Any]
) -> list[CellNode]:
    """``todo`` plus the cached same-group inputs of its cells that fail to read (a corrupt
    cell is removed with a warning by the store): they are computed again, never used. An
    input of another checkpoint that fails to read is computed again by its own group."""
    plan = ctx.plan
    queue = list(todo)
    found: dict[str, CellNode] = {c.id: c for c in todo}
    while queue:
        cell = queue.pop()
        for _param, up in cell.inputs:
            if up in found or up in results:
                continue
            node = plan.node(up)
            assert isinstance(node, CellNode)
            value = ctx.read_cell(node.key)
            if value is None and plan.group_of(node) != group:
                run_group(ctx, plan.group_of(node), only=[node])
                value = ctx.read_cell(node.key)
                if value is None:
                    raise CacheError(
                        f"{cell.id}: its input {up} vanished from the store while this run "
                        "was using it (another process removed it?); run the spec again"
                    )
            if value is None:
                found[up] = node
                queue.append(node)
            else:
                results[up] = value
    order = {m: i for i, m in enumerate(plan.metric_order)}
    return sorted(found.values(), key=lambda c: order[c.metric])


def run_group(ctx: RunContext, group: GroupNode, only: list[CellNode] | None = None) -> None:
    """Compute every missing cell of one checkpoint group (or of ``only`` those cells), in
    metric topological order."""
    plan = ctx.plan
    cells = plan.cells(group) if only is None else only
    model, seed, step = group.model, group.seed, group.step
    todo = missing_cells(ctx, cells)
    if not todo:
        ctx.counters.cells_cached += len(cells)
        return
    results: dict[str, Any] = {}
    todo = _with_unreadable_inputs(ctx, group, todo, results)
    ctx.counters.cells_cached += max(0, len(cells) - len(todo))
    bridge_holder: dict[str, Any] = {}

    def bridge() -> Any:
        if "b" not in bridge_holder:
            bridge_holder["b"] = ctx.handle(model, seed).load(step)
            ctx.counted_load(model, seed)
        return bridge_holder["b"]

    info = ctx.info(model)
    acts_by_forward = _activations(ctx, [c for c in todo if c.forward], bridge)
    for cell in todo:
        mdef = plan.metric_defs[cell.metric]
        prompts = ctx.prompts(cell.prompts, model) if cell.prompts else None
        inputs = {}
        for param, up in cell.inputs:
            inputs[param] = results.get(up)
            if inputs[param] is None:
                inputs[param] = ctx.read_cell(plan.node(up).key)
            if inputs[param] is None:
                raise CacheError(
                    f"{cell.id}: its input {up} vanished from the store while this run was "
                    "using it (another process removed it?); run the spec again"
                )
        acts = acts_by_forward.get(cell.forward) if cell.forward else None
        versions = {h: t._version for h, t in acts.items()} if acts else {}
        out = call_metric(
            mdef,
            cell.args,
            node=cell.id,
            acts=dict(acts) if acts is not None else None,  # its own dict: no swapping hooks
            prompts=prompts,
            info=info,
            bridge=bridge() if mdef.needs_bridge else None,
            inputs={p: read_only(v) for p, v in inputs.items()},
        )
        changed = [h for h, v in versions.items() if acts is not None and acts[h]._version != v]
        if changed:  # nothing computed from the changed tensors is kept, the cache drops them
            raise MetricError(
                f"metric '{mdef.name}' modified its input activation(s) {changed} in place; "
                "metrics must not modify their inputs (other metrics read the same tensors): "
                "copy first (e.g. x = acts[hook].clone())",
                node=cell.id,
            )
        ctx.write_cell(cell.key, out)
        results[cell.id] = out
        ctx.counters.cells_computed += 1


def read_only(value: Any) -> Any:
    """A view of an input cell whose values cannot be written (numpy raises ``ValueError:
    assignment destination is read-only``), so a metric cannot change a cell that the store,
    the assembly and other metrics read."""
    data = getattr(value, "data", None)
    if not isinstance(data, np.ndarray):
        return value
    view = data.view()
    view.flags.writeable = False
    return value.copy(deep=False, data=view)


def _activations(ctx: RunContext, cells: list[CellNode], bridge: Any) -> dict[str, Any]:
    """Per forward node: the hooks its missing cells read, from the cache, else from a batched
    call made ahead (``ctx.prefetched``), else from ONE forward pass."""
    import torch

    plan, store = ctx.plan, ctx.store
    wanted: dict[str, set[str]] = defaultdict(set)
    for cell in cells:
        if cell.forward is not None:
            wanted[cell.forward].update(cell.hooks)
    out: dict[str, Any] = {}
    for fid, hooks in wanted.items():
        fnode = plan.node(fid)
        assert isinstance(fnode, ForwardNode)
        policy = dict(fnode.hooks)
        acts: dict[str, Any] = {}
        for hook in sorted(hooks):
            if policy[hook] != "skip":
                cached = store.activations.read(fnode.key, stored_hook(hook, policy[hook]))
                if cached is not None:
                    acts[hook] = torch.from_numpy(
                        cached.astype(np.float32, copy=False)
                        if cached.dtype != np.float32
                        else cached
                    )
                    ctx.counters.activations_read += 1
        missing = [h for h in sorted(hooks) if h not in acts]
        if missing:
            # computed ahead with other checkpoints in one forward call (execute/work/batched.py)
            fresh = ctx.prefetched.take(fid, missing) if ctx.prefetched is not None else None
            if fresh is None:
                from mispec.metrics.forward import run_forward

                prompts = ctx.prompts(fnode.prompts, fnode.model)
                b = bridge()
                fresh = run_forward(
                    b,
                    torch.from_numpy(prompts.tokens),
                    missing,
                    batch_size=ctx.batch_size,
                    device=b.cfg.device,
                )
            ctx.counters.forward_passes += 1
            source_dtype = fnode.dtype
            for hook in missing:
                values = fresh[hook]
                if policy[hook] == "float16":
                    half = values.to(torch.float16)
                    values = half.to(torch.float32)  # metrics read exactly what the cache holds
                    ctx.write_activation(
                        fnode.key,
                        stored_hook(hook, policy[hook]),
                        half.numpy(),  # a private copy: nothing else holds it
                        source_dtype=source_dtype,
                    )
                elif policy[hook] == "store":
                    ctx.write_activation(
                        fnode.key,
                        stored_hook(hook, policy[hook]),  # the name it is read back by
                        values.numpy(),  # the very tensor the metrics read: not copied
                        source_dtype=source_dtype,
                        shared_with=values,
                    )
                acts[hook] = values
        out[fid] = acts
    return out


def run_reduction(ctx: RunContext, node: ReductionNode) -> None:
    """A metric over a whole ``step`` axis (or over another series-level result)."""
    import xarray as xr

    plan = ctx.plan
    if node.key in ctx.fresh or ctx.store.cells.has(node.key):
        ctx.counters.cells_cached += 1
        return
    mdef = plan.metric_defs[node.metric]
    inputs = {}
    for param, up_nodes in plan.inputs(node).items():
        arrays = [ctx.read_cell(u.key) for u in up_nodes]
        lost = [u for u, a in zip(up_nodes, arrays, strict=True) if a is None]
        for up in lost:  # missing or corrupt (removed with a warning): compute it again
            if isinstance(up, CellNode):
                run_group(ctx, plan.group_of(up), only=[up])
            else:
                assert isinstance(up, ReductionNode)
                run_reduction(ctx, up)
        if lost:
            arrays = [ctx.read_cell(u.key) for u in up_nodes]
        present = [a for a in arrays if a is not None]
        if len(present) < len(arrays):
            raise CacheError(
                f"{node.id}: an input cell vanished from the store while this run was using it "
                "(another process removed it?); run the spec again"
            )
        if isinstance(up_nodes[0], CellNode):
            steps = [n.step for n in up_nodes if isinstance(n, CellNode)]
            inputs[param] = xr.concat(present, dim="step", coords="minimal").assign_coords(
                step=steps
            )
        else:
            inputs[param] = read_only(present[0])
    out = call_metric(mdef, node.args, node=node.id, inputs=inputs, info=None)
    ctx.write_cell(node.key, out)
    ctx.counters.reductions_computed += 1
