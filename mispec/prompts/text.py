"""Text prompt sets from a file, tokenized the TransformerLens way.

``.txt``: one prompt per non-empty line. ``.jsonl``: one ``{"text": ...}`` object per
non-empty line. Each prompt is tokenized *without* the tokenizer's own special tokens;
then, as TransformerLens does by default, the BOS token is prepended (``prepend_bos``;
tokenizers without a BOS use their EOS, like GPT-2). Prompts are truncated to
``max_tokens`` (BOS included) and right-padded to a common length; the ``attention_mask``
extra ``[n, pos]`` marks real tokens and ``loss_mask`` ``[n, pos-1]`` the predictions
whose target is a real token. Right padding never changes the activations of real
positions under causal attention, so one forward pass serves the whole set. The builtin
metrics read ``attention_mask`` and never count the padding (no ``mask`` arg needed): per
prompt, ``loss`` is what ``transformers`` reports with ``labels=tokens`` for the unpadded
prompt (see ``mispec.metrics.builtin.loss`` for how prompts are pooled).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mispec.errors import PromptError
from mispec.prompts.core import PromptSet

# the extras every text prompt set carries (see the module docstring)
TEXT_EXTRAS = ("attention_mask", "loss_mask")
# the fields of one .jsonl prompt line
JSONL_FIELDS = ("text",)


def read_texts(path: Path) -> list[str]:
    """The prompts of a ``.txt`` or ``.jsonl`` file (``PromptError`` when unreadable)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise PromptError(f"prompt file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise PromptError(f"{path}: prompt files must be .txt (one per line) or .jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    texts: list[str] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if suffix == ".txt":
            texts.append(line)
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptError(f"{path}:{i}: not valid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise PromptError(f'{path}:{i}: expected an object with a "text" string')
        unknown = sorted(k for k in obj if k not in JSONL_FIELDS)
        if unknown:  # never silently dropped: a text prompt carries no per-prompt extras
            raise PromptError(
                f"{path}:{i}: unknown field{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(k) for k in unknown)}; a .jsonl prompt line holds only "
                '{"text": ...} (per-prompt extras such as answers come from prompt generators)'
            )
        texts.append(obj["text"])
    if not texts:
        raise PromptError(f"{path}: no prompts in file")
    return texts


def _encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (HF tokenizer or raw ``tokenizers``)."""
    if type(tokenizer).__module__.startswith("tokenizers"):
        return list(tokenizer.encode(text, add_special_tokens=False).ids)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _special_id(tokenizer: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def load_text_prompts(
    path: Path,
    tokenizer: Any,
    *,
    prepend_bos: bool = True,
    max_tokens: int | None = None,
    limit: int | None = None,
) -> PromptSet:
    """Tokenize a prompt file into a padded :class:`PromptSet` (see the module doc)."""
    path = Path(path).expanduser().resolve()
    if tokenizer is None:
        raise PromptError(
            f"{path}: this model has no tokenizer; give the model a `tokenizer:` folder"
        )
    texts = read_texts(path)
    if limit is not None:
        texts = texts[:limit]
    bos = _special_id(tokenizer, "bos_token_id", "eos_token_id")
    if prepend_bos and bos is None:
        raise PromptError(f"{path}: the tokenizer has no BOS (or EOS) token to prepend")
    pad = _special_id(tokenizer, "pad_token_id", "eos_token_id", "bos_token_id") or 0
    rows: list[list[int]] = []
    for i, text in enumerate(texts):
        ids = ([bos] if prepend_bos and bos is not None else []) + _encode(tokenizer, text)
        if max_tokens is not None:
            ids = ids[:max_tokens]
        if not ids:
            raise PromptError(f"{path}: prompt {i + 1} is empty after tokenization")
        rows.append(ids)
    width = max(len(r) for r in rows)
    tokens = np.full((len(rows), width), pad, dtype=np.int64)
    attention = np.zeros((len(rows), width), dtype=bool)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
        attention[i, : len(r)] = True
    meta = {
        "file": str(path),
        "prepend_bos": prepend_bos,
        "pad_token_id": pad,
        "lengths": [len(r) for r in rows],
    }
    extras = dict(zip(TEXT_EXTRAS, (attention, attention[:, 1:].copy()), strict=True))
    return PromptSet(tokens=tokens, extras=extras, meta=meta, has_bos=prepend_bos)
