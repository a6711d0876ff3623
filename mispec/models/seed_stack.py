"""The per-seed pieces of a seed stack (parameters stacked along a leading seed axis, see
:mod:`mispec.models.training_batched`): gradient clipping by each seed's own norm, entries
held per seed (``freeze``), and one optimizer's state split into and merged from each seed's.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import torch

from mispec.errors import CheckpointError
from mispec.models.init_weights import Hold, mask_of
from mispec.models.native import KeyMap
from mispec.models.weight_targets import Selection


@torch.no_grad()
def clip_per_seed(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` for each seed's slice of the stacked gradients: that
    seed's total norm by ``get_total_norm`` on its own slices (the very reduction it runs
    alone: a norm reduced over the seed axis instead rounds differently), then every slice
    scaled by ``max_norm / (norm + 1e-6)`` clamped at 1. Returns the [seed] norms."""
    grads = [p.grad for p in params if p.grad is not None]
    n = grads[0].shape[0]
    total = torch.stack([torch.nn.utils.get_total_norm([g[i] for g in grads]) for i in range(n)])
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.device).reshape((n,) + (1,) * (g.dim() - 1)))
    return total


class StackedHold(Hold):
    """:class:`~mispec.models.init_weights.Hold` on stacked parameters [seed, ...]: the same
    entries of every seed, each held at its own values."""

    def __init__(self, params: dict[str, torch.Tensor], selection: Selection, keys: KeyMap):
        by_bridge = {b: params[p] for p, b in keys.plain_to_bridge.items() if p in params}
        missing = sorted(set(selection) - set(by_bridge))
        if missing:
            raise CheckpointError(f"freeze: {missing} are not trainable parameters")
        one_seed = {k: v[0].detach() for k, v in by_bridge.items()}
        self.items = []
        for k, m in mask_of(selection, one_seed).items():
            p = cast(torch.nn.Parameter, by_bridge[k])  # a stacked leaf, held like one
            every = m.to(p.device).expand(p.shape)
            self.items.append((p, every, p.detach()[every].clone()))


def load_stacked_state(opt: torch.optim.Optimizer, states: list[dict[str, Any]]) -> None:
    """Load the seats' optimizer states (equal but for per-entry tensors: :func:`groups`)
    into the stacked optimizer: per-entry tensors stacked, the rest taken as they are."""
    if not states[0]["state"]:
        return
    shapes = [p.shape[1:] for group in opt.param_groups for p in group["params"]]
    merged: dict[int, dict[str, Any]] = {}
    for idx, entries in states[0]["state"].items():
        merged[idx] = {}
        for key, value in entries.items():
            if torch.is_tensor(value) and value.shape == shapes[idx]:
                value = torch.stack([s["state"][idx][key] for s in states])
            merged[idx][key] = value.clone() if torch.is_tensor(value) else value
    opt.load_state_dict({"state": merged, "param_groups": states[0]["param_groups"]})


def seed_state(opt: torch.optim.Optimizer, i: int) -> dict[str, Any]:
    """Seed ``i``'s slice of the stacked optimizer's ``state_dict()``: what its optimizer
    alone would hold. Every tensor is a copy of its own (an optimizer loading a state keeps
    a scalar such as Adam's step count as it is, and steps it in place)."""
    full = opt.state_dict()
    shapes = [p.shape for group in opt.param_groups for p in group["params"]]

    def own(value: Any, shape: torch.Size) -> Any:
        if not torch.is_tensor(value):
            return copy.deepcopy(value)
        return (value[i] if value.shape == shape else value).clone()

    state = {
        idx: {key: own(value, shapes[idx]) for key, value in entries.items()}
        for idx, entries in full["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(full["param_groups"])}
