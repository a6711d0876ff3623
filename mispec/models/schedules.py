"""Published checkpoint schedules and revision names of pretrained families (no network).

* Pythia (``EleutherAI/pythia-*``, including ``-deduped`` and the ``-seed<N>`` runs): 154
  checkpoints, steps ``0, 1, 2, 4, …, 512`` then every 1000 to 143000, revision
  ``step<N>``; the ``-v0`` models have only every 1000 from 1000.
* stanford-crfm GPT-2 replications (``stanford-crfm/alias-gpt2-small-x21`` …): 609
  checkpoints (every 10 to 100, every 50 to 2000, every 100 to 20000, every 1000 to
  400000), revision ``checkpoint-<N>``.
* TransformerLens legacy toy models (``NeelNanda/attn-only-2l``, ``gelu-*``, ``solu-*``
  …) keep their ~200 exponentially spaced checkpoints as files
  ``checkpoints/<name>_<N>.pth`` in one revision (labels are tokens seen for most).
  Their list is read from a downloaded copy in the Hugging Face cache, or from the hub
  when it is reachable; it is not embedded (it differs per model).
* Any other Hugging Face model has one published checkpoint, exposed as step 0.

The tables match ``transformer_lens.tools.model_registry.checkpoints`` (kept here so that
planning never imports torch).
"""

from __future__ import annotations

from typing import Literal

Family = Literal["pythia", "pythia-v0", "crfm", "tl_legacy", "hf"]

PYTHIA_STEPS: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512) + tuple(
    range(1000, 143000 + 1, 1000)
)
PYTHIA_V0_STEPS: tuple[int, ...] = tuple(range(1000, 143000 + 1, 1000))
CRFM_STEPS: tuple[int, ...] = (
    tuple(range(0, 100, 10))
    + tuple(range(100, 2000, 50))
    + tuple(range(2000, 20000, 100))
    + tuple(range(20000, 400000 + 1, 1000))
)
TL_LEGACY_PREFIXES = ("NeelNanda/", "ArthurConmy/", "Baidicoot/")


def family(name: str) -> Family:
    """Which checkpoint convention a pretrained model name follows."""
    if name.startswith("EleutherAI/pythia"):
        return "pythia-v0" if "-v0" in name else "pythia"
    if name.startswith("stanford-crfm/"):
        return "crfm"
    if name.startswith(TL_LEGACY_PREFIXES):
        return "tl_legacy"
    return "hf"


def embedded_steps(name: str) -> list[int] | None:
    """The published steps when they are a fixed table (``None`` for legacy toy models)."""
    fam = family(name)
    if fam == "pythia":
        return list(PYTHIA_STEPS)
    if fam == "pythia-v0":
        return list(PYTHIA_V0_STEPS)
    if fam == "crfm":
        return list(CRFM_STEPS)
    if fam == "hf":
        return [0]
    return None


def revision_for(name: str, step: int) -> str | None:
    """The hub revision holding ``step`` (``None``: the default branch)."""
    fam = family(name)
    if fam in ("pythia", "pythia-v0"):
        return f"step{step}"
    if fam == "crfm":
        return f"checkpoint-{step}"
    return None


# Architecture facts of well-known checkpointed models, for planning without a download
# (the cached config.json wins when there is one).
_PYTHIA = {  # size: (n_layers, d_model, n_heads, d_vocab)
    "14m": (6, 128, 4, 50304),
    "31m": (6, 256, 8, 50304),
    "70m": (6, 512, 8, 50304),
    "160m": (12, 768, 12, 50304),
    "410m": (24, 1024, 16, 50304),
    "1b": (16, 2048, 8, 50304),
    "1.4b": (24, 2048, 16, 50304),
    "2.8b": (32, 2560, 32, 50304),
    "6.9b": (32, 4096, 32, 50432),
    "12b": (36, 5120, 40, 50688),
}


def embedded_info(name: str) -> dict | None:
    """``ModelInfo`` fields (without ``name``) for a known family member, else ``None``."""
    fam = family(name)
    base = name.split("/", 1)[-1]
    if fam in ("pythia", "pythia-v0"):
        size = base.removeprefix("pythia-").split("-")[0]
        if size in _PYTHIA:
            n_layers, d_model, n_heads, d_vocab = _PYTHIA[size]
            return dict(
                n_layers=n_layers,
                n_heads=n_heads,
                d_model=d_model,
                d_head=d_model // n_heads,
                d_vocab=d_vocab,
                n_ctx=2048,
                d_mlp=4 * d_model,
                attn_only=False,
                architecture="GPTNeoX",
            )
    if fam == "crfm" and "gpt2" in base:
        n_layers, d_model, n_heads = (24, 1024, 16) if "medium" in base else (12, 768, 12)
        return dict(
            n_layers=n_layers,
            n_heads=n_heads,
            d_model=d_model,
            d_head=64,
            d_vocab=50257,
            n_ctx=1024,
            d_mlp=4 * d_model,
            attn_only=False,
            architecture="GPT2",
        )
    if (
        fam == "tl_legacy"
        and base.startswith(("attn-only-", "gelu-"))
        and base[-2:] in ("1l", "2l", "3l", "4l")
    ):
        attn_only = base.startswith("attn-only")
        return dict(
            n_layers=int(base[-2]),
            n_heads=8,
            d_model=512,
            d_head=64,
            d_vocab=48262,
            n_ctx=1024,
            d_mlp=None if attn_only else 2048,
            attn_only=attn_only,
            architecture="native",
        )
    return None
