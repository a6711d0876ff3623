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

from mispec.execute.context import RunContext
from mispec.execute.invoke import call_metric
from mispec.plan.nodes import Node


def missing_cells(ctx: RunContext, cell_ids: list[str]) -> list[Node]:
    return [ctx.plan.node(c) for c in cell_ids if not ctx.store.cells.has(ctx.plan.node(c).key)]


def run_group(ctx: RunContext, model: str, seed: int, step: int, cell_ids: list[str]) -> None:
    """Compute every missing cell of one checkpoint group (cells in metric topological order)."""
    plan, store = ctx.plan, ctx.store
    todo = missing_cells(ctx, cell_ids)
    if not todo:
        ctx.counters.cells_cached += len(cell_ids)
        return
    ctx.counters.cells_cached += len(cell_ids) - len(todo)
    bridge_holder: dict[str, Any] = {}

    def bridge() -> Any:
        if "b" not in bridge_holder:
            bridge_holder["b"] = ctx.handle(model, seed).load(step)
            ctx.counters.checkpoints_loaded += 1
        return bridge_holder["b"]

    from mispec import models as sources

    info = sources.model_info(model, ctx.spec.models[model], ctx.base_dir)
    acts_by_forward = _activations(ctx, [c for c in todo if c.forward], bridge)
    results: dict[str, Any] = {}
    for cell in todo:
        mdef = plan.metric_defs[cell.metric]  # type: ignore[index]
        mspec = ctx.spec.metrics[cell.metric]
        prompts = ctx.prompts(cell.prompts, model) if cell.prompts else None
        inputs = {}
        for param, (up,) in cell.inputs:
            inputs[param] = results.get(up)
            if inputs[param] is None:
                inputs[param] = store.cells.read(plan.node(up).key)
        out = call_metric(
            mdef,
            dict(mspec.args),
            node=cell.id,
            acts=acts_by_forward.get(cell.forward) if cell.forward else None,
            prompts=prompts,
            info=info,
            bridge=bridge() if mdef.needs_bridge else None,
            inputs=inputs,
        )
        store.cells.write(cell.key, out)
        results[cell.id] = out
        ctx.counters.cells_computed += 1


def _activations(ctx: RunContext, cells: list[Node], bridge: Any) -> dict[str, Any]:
    """Per forward node: the hooks its missing cells read, from the cache or ONE forward pass."""
    import torch

    plan, store = ctx.plan, ctx.store
    wanted: dict[str, set[str]] = defaultdict(set)
    for cell in cells:
        mdef = plan.metric_defs[cell.metric]  # type: ignore[index]
        wanted[cell.forward].update(mdef.hooks_for(ctx.spec.metrics[cell.metric].args))  # type: ignore[index]
    out: dict[str, Any] = {}
    for fid, hooks in wanted.items():
        fnode = plan.node(fid)
        policy = dict(fnode.hooks)
        acts: dict[str, Any] = {}
        for hook in sorted(hooks):
            if policy[hook] != "skip":
                cached = store.activations.read(fnode.key, hook)
                if cached is not None:
                    acts[hook] = torch.from_numpy(
                        cached.astype(np.float32, copy=False)
                        if cached.dtype != np.float32
                        else cached
                    )
                    ctx.counters.activations_read += 1
        missing = [h for h in sorted(hooks) if h not in acts]
        if missing:
            from mispec.metrics.forward import run_forward

            prompts = ctx.prompts(fnode.prompts, fnode.model)  # type: ignore[arg-type]
            b = bridge()
            fresh = run_forward(
                b,
                torch.from_numpy(prompts.tokens),
                missing,
                batch_size=ctx.batch_size,
                device=b.cfg.device,
            )
            ctx.counters.forward_passes += 1
            source_dtype = ctx.spec.models[fnode.model].dtype
            for hook in missing:
                values = fresh[hook]
                if policy[hook] == "float16":  # metrics read exactly what the cache will hold
                    values = values.to(torch.float16).to(torch.float32)
                if policy[hook] != "skip":
                    stored = values.numpy().astype(
                        np.float16 if policy[hook] == "float16" else values.numpy().dtype
                    )
                    store.activations.write(fnode.key, hook, stored, source_dtype=source_dtype)
                    ctx.counters.activations_written += 1
                acts[hook] = values
        out[fid] = acts
    return out


def run_reduction(ctx: RunContext, node: Node) -> None:
    """A metric over a whole ``step`` axis (or over another series-level result)."""
    import xarray as xr

    plan, store = ctx.plan, ctx.store
    if store.cells.has(node.key):
        ctx.counters.cells_cached += 1
        return
    mdef = plan.metric_defs[node.metric]  # type: ignore[index]
    inputs = {}
    for param, ups in node.inputs:
        arrays = [store.cells.read(plan.node(u).key) for u in ups]
        if any(a is None for a in arrays):
            raise RuntimeError(f"{node.id}: an input cell vanished from the store; re-run")
        up_nodes = [plan.node(u) for u in ups]
        if up_nodes[0].kind == "cell":
            steps = [n.step for n in up_nodes]
            inputs[param] = xr.concat(arrays, dim="step", coords="minimal").assign_coords(
                step=steps
            )
        else:
            inputs[param] = arrays[0]
    out = call_metric(
        mdef, dict(ctx.spec.metrics[node.metric].args), node=node.id, inputs=inputs, info=None
    )
    store.cells.write(node.key, out)
    ctx.counters.reductions_computed += 1
