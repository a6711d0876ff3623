"""What a plan would do against the current store: cached vs to-do, forward passes left,
training left, and how big the activation cache will grow."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from mispec.planning.graph import Plan
from mispec.planning.nodes import CellNode, ForwardNode, ReductionNode, series_label
from mispec.store.activations import stored_hook
from mispec.store.store import Store


@dataclass
class PlanStatus:
    counts: dict[str, int]
    cells_total: int = 0
    cells_cached: int = 0
    forward_passes: int = 0  # forward nodes that will run
    forward_total: int = 0
    training_steps_todo: dict[str, int] = field(default_factory=dict)
    activation_bytes_new: int = 0
    activation_bytes_total: int = 0
    pair_cells: int = 0  # comparison cells (``pairs:``): they read the sides' cells
    pair_cells_todo: int = 0
    pair_interventions_todo: int = 0  # of those, interventions (they run side a's model)

    @property
    def up_to_date(self) -> bool:
        return self.cells_cached == self.cells_total and not self.training_steps_todo

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["up_to_date"] = self.up_to_date
        return out


def plan_status(plan: Plan, store: Store | None) -> PlanStatus:
    status = PlanStatus(counts=plan.counts())
    consumers: dict[str, list[CellNode]] = {}
    for node in plan.nodes(CellNode) + plan.nodes(ReductionNode):
        status.cells_total += 1
        cached = store is not None and store.cells.has(node.key)
        status.cells_cached += cached
        if isinstance(node, CellNode) and node.pair is not None:
            status.pair_cells += 1
            status.pair_cells_todo += not cached
            if not cached and plan.metric_defs[node.metric].kind == "intervention":
                status.pair_interventions_todo += 1
        if isinstance(node, CellNode) and node.forward and not cached:
            consumers.setdefault(node.forward, []).append(node)
    infos: dict[str, Any] = {}  # one config read per model, not per forward node
    for fnode in plan.nodes(ForwardNode):
        status.forward_total += 1
        if fnode.model not in infos:
            infos[fnode.model] = plan.resolution.sources[fnode.model].info()
        size = _estimate_forward_bytes(plan, fnode, infos[fnode.model])
        status.activation_bytes_total += sum(size.values())
        todo = consumers.get(fnode.id, [])
        if not todo:
            continue
        wanted = {h for c in todo for h in c.hooks}
        policy = dict(fnode.hooks)
        missing = [
            h
            for h in wanted
            if policy[h] == "skip"
            or store is None
            or not store.activations.has(fnode.key, stored_hook(h, policy[h]))
        ]
        if missing:
            status.forward_passes += 1
            status.activation_bytes_new += sum(
                size.get(h, 0) for h in missing if policy[h] != "skip"
            )
    for (model, seed), series in plan.resolution.series.items():
        left = plan.resolution.sources[model].training_steps_left(
            seed, list(series.steps), store.root if store is not None else None
        )
        if left is not None:
            status.training_steps_todo[series_label(model, seed)] = left
    return status


_SHAPES = [  # hook pattern -> per-layer element count as a function of (B, T, info)
    (r"hook_(pattern|attn_scores)$", lambda B, T, i: B * i.n_heads * T * T),
    (r"hook_[zqkv]$|\.(q|k|v)\.hook_out$", lambda B, T, i: B * T * i.n_heads * i.d_head),
    (r"mlp\.hook_(pre|post)$", lambda B, T, i: B * T * (i.d_mlp or 4 * i.d_model)),
]


def _estimate_forward_bytes(plan: Plan, fnode: ForwardNode, info: Any) -> dict[str, int]:
    """Bytes per hook of one forward entry (uncompressed), from the model's shape."""
    pspec = plan.spec.prompts[fnode.prompts]
    B = int(pspec.args.get("n", pspec.limit or 32))
    T = int(pspec.max_tokens or 2 * int(pspec.args.get("half_len", 24)) + 1)
    out = {}
    for hook, policy in fnode.hooks:
        width = 2 if policy == "float16" else 4
        if hook == "next_logprob" or hook == "next_correct":
            n = B * (T - 1)
        elif hook == "final_logits":
            n = B * info.d_vocab
        elif hook == "logits":
            n = B * T * info.d_vocab
        else:
            per_layer = next(
                (f(B, T, info) for pat, f in _SHAPES if re.search(pat, hook)), B * T * info.d_model
            )
            n = per_layer * (info.n_layers if "{layer}" in hook else 1)
        out[hook] = n * width
    return out
