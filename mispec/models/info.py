"""What a metric may know about a model without its weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    name: str  # the spec's model name
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    n_ctx: int
    d_mlp: int | None = None
    attn_only: bool = False
    architecture: str = "native"  # "native" (mispec-trained), "GPTNeoX", "GPT2" ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_bridge(cls, name: str, bridge: Any, architecture: str = "native") -> ModelInfo:
        cfg = bridge.cfg
        return cls(
            name=name,
            n_layers=int(cfg.n_layers),
            n_heads=int(cfg.n_heads),
            d_model=int(cfg.d_model),
            d_head=int(cfg.d_head),
            d_vocab=int(cfg.d_vocab),
            n_ctx=int(cfg.n_ctx),
            d_mlp=int(cfg.d_mlp) if getattr(cfg, "d_mlp", None) else None,
            attn_only=bool(getattr(cfg, "attn_only", False)),
            architecture=architecture,
        )
