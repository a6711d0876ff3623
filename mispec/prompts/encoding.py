"""What mispec asks of a tokenizer, an HF tokenizer or a raw ``tokenizers`` one alike: token
ids without special tokens, each token's decoded string, the special tokens' ids, and which
tokens start a whitespace-separated word (from the tokenizer's character offsets, else from
the decoded strings)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _is_raw(tokenizer: Any) -> bool:
    return type(tokenizer).__module__.startswith("tokenizers")


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens (HF tokenizer or raw ``tokenizers``)."""
    if _is_raw(tokenizer):
        return list(tokenizer.encode(text, add_special_tokens=False).ids)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _offsets(tokenizer: Any, text: str) -> list[tuple[int, int]] | None:
    """Character spans of the tokens of ``text`` where the tokenizer reports them."""
    try:
        if _is_raw(tokenizer):
            return list(tokenizer.encode(text, add_special_tokens=False).offsets)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError, KeyError):
        return None


def decode(tokenizer: Any, token: int) -> str:
    return str(tokenizer.decode([token]))


def word_starts(tokenizer: Any, text: str, ids: list[int], strings: list[str]) -> list[bool]:
    """True at the token holding the first character of each whitespace-separated word.

    The tokens' character spans come from the tokenizer's offsets, else from the decoded
    strings when they spell the text; failing both, a token starts a word when it begins with
    whitespace or is the first."""
    spans = _offsets(tokenizer, text)
    if spans is None or len(spans) != len(ids):
        if "".join(strings) != text:
            return [i == 0 or s[:1].isspace() for i, s in enumerate(strings)]
        ends = np.cumsum([len(s) for s in strings]).tolist()
        spans = list(zip([0, *ends[:-1]], ends, strict=True))
    firsts = {
        j for j, c in enumerate(text) if not c.isspace() and (j == 0 or text[j - 1].isspace())
    }
    out: list[bool] = []
    seen: set[int] = set()
    for start, end in spans:
        hit = firsts.intersection(range(start, end)) - seen
        seen |= hit
        out.append(bool(hit))
    return out


def special_id(tokenizer: Any, *names: str) -> int | None:
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return None


def unk_id(tokenizer: Any) -> int | None:
    """The unknown token's id (HF tokenizer or raw ``tokenizers``), None when there is none."""
    if _is_raw(tokenizer):
        name = getattr(tokenizer.model, "unk_token", None)
        return tokenizer.token_to_id(name) if isinstance(name, str) else None
    value = getattr(tokenizer, "unk_token_id", None)
    return int(value) if value is not None else None
