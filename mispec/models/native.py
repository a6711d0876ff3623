"""TL-native models: bridges booted from a config, and the plain module used for training.

``TransformerBridge.boot_native`` wraps a ``NativeModel`` in bridge components; its
``state_dict()`` / ``load_state_dict()`` round-trip exactly, so one bridge per
(model, seed) serves every checkpoint by swapping weights (~2 ms).

Training runs on a *plain* ``NativeModel`` built with the same seeded initialisation
(``boot_native`` forks the RNG and runs ``initialize_native_model``; so does
:func:`plain_model`), because the unwrapped module's forward is ~25% faster. Checkpoints
are always written with the bridge's state-dict keys: :func:`key_map` learns the
plain→bridge renaming once per config by wrapping a copy of the plain model and
matching tensors by storage, so the mapping never goes stale when TransformerLens
renames things.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from transformer_lens.config import TransformerBridgeConfig
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.sources import build_bridge_from_module
from transformer_lens.model_bridge.sources.native import NativeModel, initialize_native_model

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    return name if isinstance(name, torch.dtype) else DTYPES[name]


def bridge_config(kwargs: dict[str, Any]) -> TransformerBridgeConfig:
    return TransformerBridgeConfig(**kwargs)


def boot(
    kwargs: dict[str, Any], *, device: str = "cpu", dtype: str = "float32", tokenizer: Any = None
) -> TransformerBridge:
    """A native bridge in eval mode with gradients off."""
    bridge = TransformerBridge.boot_native(  # type: ignore[attr-defined]  # attached at import
        bridge_config(kwargs), tokenizer=tokenizer, device=device, dtype=torch_dtype(dtype)
    )
    return freeze(bridge)


def freeze(bridge: TransformerBridge) -> TransformerBridge:
    bridge.eval()
    for p in bridge.parameters():
        p.requires_grad_(False)
    return bridge


def plain_model(kwargs: dict[str, Any]) -> NativeModel:
    """The unwrapped native module with exactly ``boot_native``'s seeded initialisation."""
    cfg = bridge_config(kwargs)
    if cfg.seed is None:
        raise ValueError("plain_model needs a seeded config")
    with torch.random.fork_rng(devices=[]):
        model = NativeModel(copy.deepcopy(cfg))
        initialize_native_model(model, copy.deepcopy(cfg))
    return model


@dataclass(frozen=True)
class KeyMap:
    """``plain`` state-dict key → bridge key; ``fixed``: bridge entries with no plain
    counterpart (e.g. a zero unembedding-bias buffer), with their boot values."""

    plain_to_bridge: dict[str, str]
    fixed: dict[str, torch.Tensor]


def key_map(kwargs: dict[str, Any]) -> KeyMap:
    model = plain_model(kwargs)
    by_ptr = {v.data_ptr(): k for k, v in model.state_dict().items()}
    bridge = build_bridge_from_module(
        model, "TransformerLensNative", tl_config=bridge_config(kwargs)
    )
    mapping: dict[str, str] = {}
    fixed: dict[str, torch.Tensor] = {}
    for bkey, tensor in bridge.state_dict().items():
        pkey = by_ptr.get(tensor.data_ptr())
        if pkey is None or pkey in mapping:
            fixed[bkey] = tensor.detach().clone()
        else:
            mapping[pkey] = bkey
    unmapped = set(by_ptr.values()) - set(mapping)
    if unmapped:
        raise RuntimeError(f"native weights with no bridge key: {sorted(unmapped)}")
    return KeyMap(mapping, fixed)


def to_bridge_state(model: torch.nn.Module, keys: KeyMap) -> dict[str, torch.Tensor]:
    """The plain model's weights under bridge keys (contiguous CPU copies)."""
    out = {
        keys.plain_to_bridge[k]: v.detach().to("cpu", copy=True).contiguous()
        for k, v in model.state_dict().items()
    }
    out.update({k: v.clone() for k, v in keys.fixed.items()})
    return out


def load_bridge_state(model: torch.nn.Module, state: dict[str, torch.Tensor], keys: KeyMap) -> None:
    """Load a bridge-keyed state dict into the plain model (strict)."""
    inverse = {b: p for p, b in keys.plain_to_bridge.items()}
    missing = set(inverse) - set(state)
    if missing:
        raise KeyError(f"checkpoint lacks {sorted(missing)[:5]}")
    model.load_state_dict({inverse[k]: v for k, v in state.items() if k in inverse}, strict=True)
