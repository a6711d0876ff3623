"""Legacy TransformerLens checkpoints (``HookedTransformer.state_dict()`` layout) built
locally: the format of ``NeelNanda/*`` toy-model repos and of old training runs.

:func:`to_tl_legacy` inverts ``convert_tl_checkpoint`` (bridge keys → ``W_Q``-style
per-head keys); :func:`build_tl_legacy_folder` writes ``<name>_<N>.pth`` files plus a
TL-style ``config.json``; :func:`build_tl_legacy_cache` lays the same files out as a hub
cache for a ``NeelNanda/...`` repo id (``checkpoints/<name>_<N>.pth``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

TOY = dict(
    d_model=32,
    d_head=8,
    n_layers=2,
    n_heads=4,
    n_ctx=16,
    d_vocab=20,
    attn_only=True,
    normalization_type="LN",
    act_fn="relu",
)


def checkpoint_state(kwargs: dict, step: int) -> dict:
    """Bridge-keyed weights "at step ``step``": a seeded native init, perturbed per step."""
    import torch
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_native(TransformerBridgeConfig(**{**kwargs, "seed": 0}))
    gen = torch.Generator().manual_seed(1000 + step)
    sd = bridge.state_dict()
    return {k: v + 0.05 * step**0.5 * torch.randn(v.shape, generator=gen) for k, v in sd.items()}


def to_tl_legacy(sd: dict, n_heads: int) -> dict:
    import einops

    out = {}
    for key, t in sd.items():
        stem, _, leaf = key.rpartition(".")
        part = stem.rpartition(".")[2]
        if stem == "embed":
            out["embed.W_E"] = t
        elif stem == "pos_embed":
            out["pos_embed.W_pos"] = t
        elif stem == "unembed":
            out["unembed.W_U" if leaf == "weight" else "unembed.b_U"] = (
                t.T if leaf == "weight" else t
            )
        elif part in ("q", "k", "v"):
            base = stem.rpartition(".")[0]
            name = part.upper()
            if leaf == "weight":
                out[f"{base}.W_{name}"] = einops.rearrange(t, "(h d) m -> h m d", h=n_heads)
            else:
                out[f"{base}.b_{name}"] = einops.rearrange(t, "(h d) -> h d", h=n_heads)
        elif part == "o":
            base = stem.rpartition(".")[0]
            if leaf == "weight":
                out[f"{base}.W_O"] = einops.rearrange(t, "m (h d) -> h d m", h=n_heads)
            else:
                out[f"{base}.b_O"] = t
        elif part in ("in", "out"):
            base = stem.rpartition(".")[0]
            out[f"{base}.{'W' if leaf == 'weight' else 'b'}_{part}"] = (
                t.T if leaf == "weight" else t
            )
        else:  # layer norms
            out[f"{stem}.{'w' if leaf == 'weight' else 'b'}"] = t
    return out


def build_tl_legacy_folder(
    root: Path, steps: Sequence[int] = (0, 5, 50), *, name: str = "toy", kwargs: dict | None = None
) -> Path:
    import torch

    kwargs = kwargs or TOY
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for step in steps:
        torch.save(
            to_tl_legacy(checkpoint_state(kwargs, step), kwargs["n_heads"]),
            root / f"{name}_{step}.pth",
        )
    (root / "config.json").write_text(json.dumps(kwargs))
    return root


def build_tl_legacy_cache(
    cache_dir: Path, repo_id: str, steps: Sequence[int] = (0, 5, 50), kwargs: dict | None = None
) -> Path:
    """A hub cache for ``repo_id`` whose ``main`` snapshot holds ``config.json`` and
    ``checkpoints/<name>_<N>.pth`` (real blobs + symlinks, like huggingface_hub)."""
    kwargs = kwargs or TOY
    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snap = repo / "snapshots" / commit
    name = repo_id.rpartition("/")[2]
    build_tl_legacy_folder(snap / "checkpoints", steps, name=name, kwargs=kwargs)
    (snap / "checkpoints" / "config.json").rename(snap / "config.json")
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return Path(cache_dir)
