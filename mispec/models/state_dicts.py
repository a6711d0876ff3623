"""Checkpoint files → state dicts with TransformerBridge keys.

A step's weights come as ``.safetensors`` (checksum verified when mispec wrote them) or as
``.pth``/``.pt`` files read with ``torch.load(weights_only=True)`` (tensors only, never an
arbitrary pickle). Legacy ``HookedTransformer`` state dicts (``W_E``, ``W_Q``…) are converted
with TransformerLens's ``convert_tl_checkpoint``; bridge state dicts pass through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mispec.errors import CheckpointError
from mispec.models import checkpoints as ckpt


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` (checksum verified) or ``.pth``/``.pt`` (tensors
    only: ``torch.load(weights_only=True)``, never arbitrary pickles)."""
    if path.suffix == ".safetensors":
        return ckpt.read_tensors(path)[0]
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable state dict ({exc})") from exc
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: not a state dict")
    return sd.get("model", sd) if "model" in sd and isinstance(sd["model"], dict) else sd


def to_bridge_keys(
    sd: dict[str, torch.Tensor], cfg: Any, *, legacy_layout: str | None = None
) -> dict[str, torch.Tensor]:
    """Legacy ``HookedTransformer`` state dicts → bridge keys; bridge ones pass through."""
    if legacy_layout == "mingpt":  # Baidicoot/Othello-GPT: minGPT keys, split q/k/v
        from transformer_lens.model_bridge.sources.tl_legacy import _convert_mingpt_weights

        sd = _convert_mingpt_weights(sd, cfg)
    if not any(k.endswith((".W_E", ".W_Q", ".W_U")) for k in sd):
        return sd
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    if legacy_layout == "neel-solu-old":
        from transformer_lens.model_bridge.sources.tl_legacy import _convert_neel_solu_old_weights

        sd = _convert_neel_solu_old_weights(sd, cfg)
    sd = {k: v for k, v in sd.items() if not k.endswith((".mask", ".IGNORE"))}
    out = convert_tl_checkpoint(sd, cfg)
    if "unembed.bias" not in out:  # several legacy repos have no unembedding bias
        out["unembed.bias"] = torch.zeros(cfg.d_vocab, dtype=next(iter(out.values())).dtype)
    return out
