"""Tiny GPT-NeoX (Pythia-style) checkpoints built locally, for tests and benchmarks.

The hub is unreachable, so tests build their own "published" checkpoints:

* :func:`build_tokenizer` — a ``tokenizers`` WordLevel tokenizer over ``w0 … w{n-4}`` plus
  ``<bos>``/``<eos>``/``<unk>``, whitespace pre-tokenised, that prepends BOS like Pythia's
  does when asked (``add_bos_token``);
* :func:`build_checkpoint_folder` — ``root/step<N>/`` HF folders (``config.json`` +
  ``model.safetensors`` + tokenizer files), one per step, with weights that differ per
  step (a fixed init plus ``step``-scaled noise) so that swapping steps is observable;
* :func:`build_hf_cache` — the same checkpoints laid out as a Hugging Face hub cache
  (``models--org--name/{blobs,refs,snapshots}``) with one ref per revision
  (``step<N>``, plus ``main``), so the *pretrained* code path can load them offline.

Everything is parametric in layers / width / vocabulary / steps and deterministic.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

BOS, EOS, UNK = "<bos>", "<eos>", "<unk>"


def vocab_words(vocab_size: int) -> list[str]:
    """The tokenizer's vocabulary in id order: ``<bos> <eos> <unk> w0 w1 …``."""
    return [BOS, EOS, UNK] + [f"w{i}" for i in range(vocab_size - 3)]


def build_tokenizer(vocab_size: int = 64):
    """A fast HF tokenizer (``PreTrainedTokenizerFast``) over :func:`vocab_words`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = vocab_words(vocab_size)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 0)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=EOS
    )


def neox_config(
    *, n_layers: int = 2, d_model: int = 32, n_heads: int = 4, vocab_size: int = 64, n_ctx: int = 64
):
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=d_model,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        intermediate_size=4 * d_model,
        max_position_embeddings=n_ctx,
        rotary_pct=0.25,
        use_parallel_residual=True,
        bos_token_id=0,
        eos_token_id=1,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )


def build_model(step: int, *, seed: int = 0, **cfg_kwargs):
    """The tiny model "at training step ``step``": a seeded init, then every floating
    parameter moved by ``0.02 * step``-scaled noise (so weights differ between steps)."""
    import torch
    from transformers import GPTNeoXForCausalLM

    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(neox_config(**cfg_kwargs)).eval()
    gen = torch.Generator().manual_seed(seed * 100_003 + step)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02 * (1 + step) ** 0.5)
    return model


def build_checkpoint_folder(
    root: Path,
    steps: Sequence[int] = (0, 10, 100),
    *,
    seed: int = 0,
    folder: str = "step{step}",
    with_tokenizer: bool = True,
    **cfg_kwargs,
) -> Path:
    """``root/step<N>/`` HF checkpoint folders; returns ``root``."""
    root = Path(root)
    tokenizer = build_tokenizer(cfg_kwargs.get("vocab_size", 64)) if with_tokenizer else None
    for step in steps:
        out = root / folder.format(step=step)
        build_model(step, seed=seed, **cfg_kwargs).save_pretrained(out)
        if tokenizer is not None:
            tokenizer.save_pretrained(out)
    return root


def build_hf_cache(
    cache_dir: Path,
    repo_id: str,
    steps: Sequence[int] = (0, 10, 100),
    *,
    revision: str = "step{step}",
    seed: int = 0,
    **cfg_kwargs,
) -> Path:
    """Lay the tiny checkpoints out as a hub cache (``HF_HUB_CACHE`` layout) for
    ``repo_id``, one revision per step (and ``main`` for the last one); returns the cache.

    Each revision gets a fake commit hash; files are stored once under ``blobs/`` and
    linked into ``snapshots/<commit>/`` the way ``huggingface_hub`` does.
    """
    cache_dir = Path(cache_dir)
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    tmp = cache_dir / ".build"
    for step in steps:
        rev = revision.format(step=step)
        commit = hashlib.sha1(f"{repo_id}@{rev}".encode()).hexdigest()
        src = build_checkpoint_folder(tmp, [step], seed=seed, folder="s", **cfg_kwargs) / "s"
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True, exist_ok=True)
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            data = f.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            if not blob.exists():
                blob.write_bytes(data)
            link = snap / f.name
            if link.exists() or link.is_symlink():
                link.unlink()
            link.symlink_to(Path("..") / ".." / "blobs" / blob.name)
        refs = repo / "refs"
        refs.mkdir(parents=True, exist_ok=True)
        (refs / rev).write_text(commit)
        if step == max(steps):
            (refs / "main").write_text(commit)
        shutil.rmtree(tmp)
    return cache_dir
