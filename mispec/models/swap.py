"""Swapping a checkpoint's weights into a live bridge by copying tensors in place.

``TransformerBridge.load_state_dict`` maps every key through the bridge's key translation
and then walks the whole module tree (``nn.Module.load_state_dict``): 2.0 ms per checkpoint
for the 2-layer benchmark toy, ~40 % of its forward pass; the copies below take 0.05 ms.
When the state dict's keys are exactly the bridge's own ``state_dict()`` keys — always for
mispec's native route — the same effect is one ``copy_`` per tensor into the tensors
``state_dict(keep_vars=True)`` returns (the live parameters and buffers). ``nn.Module.load_state_dict`` does exactly that
copy too; it only adds hooks, which :func:`swappable` rules out.

Anything the fast path cannot prove equivalent falls back to ``load_state_dict(strict=True)``
(``tests/system/test_models_native.py`` checks both give bit-identical forward passes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def swappable(module: nn.Module) -> bool:
    """No module of the tree customises state-dict loading (hooks, overrides)."""
    base = nn.Module._load_from_state_dict
    for m in module.modules():
        if m._load_state_dict_pre_hooks or getattr(m, "_load_state_dict_post_hooks", None):
            return False
        if type(m)._load_from_state_dict is not base:
            return False
    return True


class InPlaceSwap:
    """The live tensors of one bridge, by state-dict key; ``None`` from :meth:`for_bridge`
    when the bridge customises loading."""

    def __init__(self, live: dict[str, torch.Tensor]):
        self.live = live
        self.keys = frozenset(live)

    @classmethod
    def for_bridge(cls, bridge: Any) -> InPlaceSwap | None:
        if not swappable(bridge):
            return None
        return cls(dict(bridge.state_dict(keep_vars=True)))

    def matches(self, state: dict[str, torch.Tensor]) -> bool:
        """Same keys and shapes: a copy loads exactly what ``strict=True`` would."""
        if state.keys() != self.keys:
            return False
        return all(self.live[k].shape == v.shape for k, v in state.items())

    def load(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for key, value in state.items():
                self.live[key].copy_(value)
