"""Model configuration files → ``ModelInfo`` / TransformerBridge config fields (no torch).

Two dialects: Hugging Face ``config.json`` (has ``model_type``) and TransformerLens-style
json (``d_model``, ``n_layers``, ``n_heads`` …) — the format of legacy TL repos and of the
``tl_config`` block mispec writes next to the checkpoints it trains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mispec.errors import CheckpointError
from mispec.models.info import ModelInfo

# TransformerBridgeConfig fields that a TL-style json may carry.
TL_FIELDS = (
    "d_model",
    "d_head",
    "n_layers",
    "n_ctx",
    "n_heads",
    "d_vocab",
    "d_mlp",
    "act_fn",
    "attn_only",
    "normalization_type",
    "positional_embedding_type",
    "final_rms",
    "initializer_range",
    "rotary_dim",
    "rotary_base",
    "n_key_value_heads",
    "gated_mlp",
    "tokenizer_name",
    "d_vocab_out",
    "eps",
)
# Fields whose explicit null is a value that differs from TransformerBridgeConfig's default:
# ``normalization_type: null`` is a model without normalisation (the default is LayerNorm).
# Every other field's null is TransformerLens's own default or not a value it takes, so a
# null there is left to the default.
NULL_IS_A_VALUE = ("normalization_type",)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read model config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"model config {path} is not a JSON object")
    return data


def is_hf_config(cfg: dict[str, Any]) -> bool:
    return "model_type" in cfg


def tl_config_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """TransformerBridgeConfig keyword arguments from a TL-style config dict."""
    cfg = dict(cfg.get("tl_config", cfg))
    if "normalization" in cfg and "normalization_type" not in cfg:
        cfg["normalization_type"] = cfg.pop("normalization")
    if cfg.get("shortformer_pos") or cfg.get("positional_embedding_type") == "shortformer":
        raise CheckpointError(
            "shortformer positional embeddings are not implemented by TransformerLens 4's "
            "native bridge; this checkpoint cannot be loaded"
        )
    missing = [k for k in ("d_model", "n_layers", "n_heads", "d_vocab", "n_ctx") if k not in cfg]
    if missing:
        raise CheckpointError(f"model config lacks {', '.join(missing)}")
    out = {
        k: cfg[k]
        for k in TL_FIELDS
        if cfg.get(k) is not None or (k in NULL_IS_A_VALUE and k in cfg)
    }
    out.setdefault("d_head", cfg["d_model"] // cfg["n_heads"])
    if out.get("attn_only"):
        out.pop("d_mlp", None)
    return out


def _first(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def info_from_hf_config(name: str, cfg: dict[str, Any]) -> ModelInfo:
    """ModelInfo from a Hugging Face ``config.json``."""
    cfg = cfg.get("text_config", cfg) if "num_hidden_layers" not in cfg else cfg
    d_model = int(_first(cfg, "hidden_size", "n_embd", "d_model"))
    n_heads = int(_first(cfg, "num_attention_heads", "n_head", "num_heads"))
    arch = (cfg.get("architectures") or [cfg.get("model_type", "hf")])[0]
    d_mlp = _first(cfg, "intermediate_size", "n_inner", "ffn_dim", default=4 * d_model)
    return ModelInfo(
        name=name,
        n_layers=int(_first(cfg, "num_hidden_layers", "n_layer", "num_layers")),
        n_heads=n_heads,
        d_model=d_model,
        d_head=int(_first(cfg, "head_dim", default=d_model // n_heads)),
        d_vocab=int(cfg["vocab_size"]),
        n_ctx=int(_first(cfg, "max_position_embeddings", "n_positions", "n_ctx", default=2048)),
        d_mlp=int(d_mlp),
        attn_only=False,
        architecture=str(arch).removesuffix("ForCausalLM").removesuffix("LMHeadModel"),
    )


def info_from_tl_config(name: str, cfg: dict[str, Any], architecture: str = "native") -> ModelInfo:
    """ModelInfo from a TL-style config (legacy TL repos, mispec-trained models)."""
    kw = tl_config_kwargs(cfg)
    attn_only = bool(kw.get("attn_only", False))
    return ModelInfo(
        name=name,
        n_layers=int(kw["n_layers"]),
        n_heads=int(kw["n_heads"]),
        d_model=int(kw["d_model"]),
        d_head=int(kw["d_head"]),
        d_vocab=int(kw["d_vocab"]),
        n_ctx=int(kw["n_ctx"]),
        d_mlp=None if attn_only else int(kw.get("d_mlp") or 4 * kw["d_model"]),
        attn_only=attn_only,
        architecture=architecture,
    )


def info_from_config(name: str, cfg: dict[str, Any]) -> ModelInfo:
    return info_from_hf_config(name, cfg) if is_hf_config(cfg) else info_from_tl_config(name, cfg)
