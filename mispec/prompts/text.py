"""Text prompt sets from a file, tokenized the TransformerLens way.

The file's lines are read and checked by :mod:`mispec.prompts.records` (``.txt``: one prompt
per line; ``.jsonl``: ``text`` plus optional ``answer``, ``wrong_answer``, ``corrupt_text``,
``positions``). Each text is tokenized *without* the tokenizer's own special tokens; then, as
TransformerLens does by default, the BOS token is prepended (``prepend_bos``; tokenizers
without a BOS use their EOS, like GPT-2). Prompts are truncated to ``max_tokens`` (BOS
included) and right-padded to a common length. Right padding never changes the activations
of real positions under causal attention, so one forward pass serves the whole set; the
builtin metrics never count the padding.

Extras of every text prompt set (``[n, pos]`` unless said):

* ``attention_mask`` (True at real tokens) and ``loss_mask`` ``[n, pos-1]`` (predictions whose
  target is a real token);
* ``token_strings``: each token decoded on its own (``" Mary"``; ``""`` at padding);
* ``word_start``: True at the token that holds the first character of a whitespace-separated
  word of the text (BOS, padding and pure-whitespace tokens: False), located by the
  tokenizer's character offsets (else by the decoded strings, when they spell the text);

From the optional ``.jsonl`` fields:

* ``answer`` / ``wrong_answer`` ``[n]``: token ids. Each must be exactly ONE token for this
  tokenizer, else a ``PromptFileError`` at the file's line (``validate`` checks every model
  whose tokenizer is local; others at the run);
* ``corrupt_tokens``: ``corrupt_text`` tokenized the same way. Clean and corrupt must have the
  same number of tokens (patching swaps activations position by position), else an error at
  the line: nothing is padded or cut to make them align;
* ``pos_<name>`` ``[n]``: each named position as an index into the padded token row (BOS
  counted), e.g. ``pos_END``, ``pos_IO``; an index outside the prompt is an error at the line.

The answer is predicted at each prompt's last real token (``answer_positions``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mispec.errors import PromptError
from mispec.prompts.core import PromptSet
from mispec.prompts.encoding import decode, encode, special_id, unk_id, word_starts
from mispec.prompts.records import (
    JSONL_FIELDS,
    POSITION_PREFIX,
    Position,
    PromptFileError,
    TextRecord,
    read_records,
    read_texts,
    record_extras,
)

# the extras every text prompt set carries (see the module docstring)
TEXT_EXTRAS = ("attention_mask", "loss_mask", "token_strings", "word_start")

__all__ = [
    "JSONL_FIELDS",
    "TEXT_EXTRAS",
    "load_text_prompts",
    "read_records",
    "read_texts",
    "record_extras",
    "text_extras",
]


def text_extras(records: list[TextRecord]) -> tuple[str, ...]:
    """Every extra a text prompt set built from these records carries."""
    return TEXT_EXTRAS + record_extras(records)


def _single_token(path: Path, record: TextRecord, field: str, tokenizer: Any, who: str) -> int:
    value = getattr(record, field)
    ids = encode(tokenizer, value)
    if len(ids) != 1:
        pieces = [decode(tokenizer, t) for t in ids]
        raise PromptFileError(
            path,
            record.line,
            f"{field} {value!r} is {len(ids)} tokens{who} ({pieces}); an answer must be one "
            "token (a logit difference compares two single logits): pick a single-token word "
            "(often with its leading space)",
        )
    unk = unk_id(tokenizer)
    if unk is not None and ids[0] == unk:
        raise PromptFileError(
            path,
            record.line,
            f"{field} {value!r} is not in the vocabulary{who}: it becomes the unknown token "
            f"{decode(tokenizer, unk)!r}, so the logit difference would read that token's "
            "logit: pick a word the tokenizer knows (often with its leading space)",
        )
    return ids[0]


def _resolve(path: Path, record: TextRecord, name: str, at: Position, words: list[bool]) -> int:
    """A named position as an index into the text's own tokens (no BOS)."""
    n = len(words)
    if at.kind == "token":
        index = at.index + n if at.index < 0 else at.index
        ok = 0 <= index < n
    else:
        starts = [i for i in range(n) if words[i]]
        k = at.index + len(starts) if at.index < 0 else at.index
        ok = 0 <= k < len(starts)
        index = starts[k] if ok else -1
    if not ok:
        size = f"{n} tokens" if at.kind == "token" else f"{sum(words)} words"
        raise PromptFileError(
            path,
            record.line,
            f"position {name!r} ({at.kind} {at.index}) is outside this prompt ({size})",
        )
    return index


def _check_context(
    path: Path, record: TextRecord, n: int, max_tokens: int | None, n_ctx: int | None, who: str
) -> None:
    kept = n if max_tokens is None else min(n, max_tokens)
    if n_ctx is not None and kept > n_ctx:
        raise PromptFileError(
            path,
            record.line,
            f"the prompt is {n} tokens{who} (BOS included), longer than the model's context "
            f"(n_ctx = {n_ctx}): shorten it, or set `max_tokens: {n_ctx}` on the prompt set "
            "to cut every prompt there",
        )


def _at_least_too_long(
    tokenizer: Any, text: str, lead: int, max_tokens: int | None, n_ctx: int | None
) -> int | None:
    """For a text far longer than the context could hold, a lower bound on its token count
    read from a prefix alone (cut at a space: the words before it tokenize as in the whole
    text), when that bound already exceeds ``n_ctx``; else None. An 18 MB line is then
    refused after encoding a few kB, not all of it."""
    if n_ctx is None or (max_tokens is not None and max_tokens <= n_ctx):
        return None
    budget = max(4096, 16 * n_ctx)  # characters: far more than n_ctx tokens usually span
    if len(text) <= budget:
        return None
    cut = text.rfind(" ", 0, budget)
    if cut <= 0:
        return None  # one word this long: only the whole text can say
    # one token fewer for the last word, which may merge with what follows the cut
    at_least = lead + len(encode(tokenizer, text[:cut])) - 1
    return at_least if at_least > n_ctx else None


def load_text_prompts(
    path: Path,
    tokenizer: Any,
    *,
    prepend_bos: bool = True,
    max_tokens: int | None = None,
    limit: int | None = None,
    model: str | None = None,
    n_ctx: int | None = None,
) -> PromptSet:
    """Tokenize a prompt file into a padded :class:`PromptSet` (see the module doc);
    ``model`` names the model in error messages. With ``n_ctx`` (the model's context) a
    prompt longer than it (after ``max_tokens``) is refused at its line, before any work
    per token."""
    path = Path(path).expanduser().resolve()
    if tokenizer is None:
        raise PromptError(
            f"{path}: this model has no tokenizer; give the model a `tokenizer:` folder"
        )
    records = read_records(path)
    if limit is not None:
        records = records[:limit]
    who = f" for model '{model}'" if model else ""
    bos = special_id(tokenizer, "bos_token_id", "eos_token_id")
    if prepend_bos and bos is None:
        raise PromptError(f"{path}: the tokenizer has no BOS (or EOS) token to prepend")
    pad = special_id(tokenizer, "pad_token_id", "eos_token_id", "bos_token_id") or 0
    lead: list[int] = [bos] if prepend_bos and bos is not None else []
    rows, corrupt_rows, strings, starts = [], [], [], []
    answers: dict[str, list[int]] = {"answer": [], "wrong_answer": []}
    positions: dict[str, list[int]] = {name: [] for name in records[0].positions}
    for record in records:
        at_least = _at_least_too_long(tokenizer, record.text, len(lead), max_tokens, n_ctx)
        if at_least is not None:
            raise PromptFileError(
                path,
                record.line,
                f"the prompt is at least {at_least} tokens{who} (BOS included; counted on its "
                f"start, it is {len(record.text)} characters), longer than the model's context "
                f"(n_ctx = {n_ctx}): shorten it, or set `max_tokens: {n_ctx}` on the prompt "
                "set to cut every prompt there",
            )
        ids = encode(tokenizer, record.text)
        _check_context(path, record, len(lead) + len(ids), max_tokens, n_ctx, who)
        pieces = [decode(tokenizer, t) for t in ids]
        words = word_starts(tokenizer, record.text, ids, pieces)
        if record.corrupt_text is not None:
            corrupt = encode(tokenizer, record.corrupt_text)
            if len(corrupt) != len(ids):
                raise PromptFileError(
                    path,
                    record.line,
                    f"corrupt_text is {len(corrupt)} tokens{who}, text is {len(ids)}: clean "
                    "and corrupt prompts must align token for token (patching swaps "
                    "activations position by position; nothing is padded or cut to align them)",
                )
            corrupt_rows.append((lead + corrupt)[:max_tokens])
        for field in answers:
            if getattr(record, field) is not None:
                answers[field].append(_single_token(path, record, field, tokenizer, who))
        for name, at in record.positions.items():
            positions[name].append(len(lead) + _resolve(path, record, name, at, words))
        row = (lead + ids)[:max_tokens]
        if not row:
            raise PromptFileError(path, record.line, "the prompt is empty after tokenization")
        rows.append(row)
        strings.append([decode(tokenizer, t) for t in lead] + pieces)
        starts.append([False] * len(lead) + words)
    width = max(len(r) for r in rows)
    n = len(rows)
    tokens = np.full((n, width), pad, dtype=np.int64)
    attention = np.zeros((n, width), dtype=bool)
    token_strings = np.full((n, width), "", dtype=object)
    word_start = np.zeros((n, width), dtype=bool)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
        attention[i, : len(r)] = True
        token_strings[i, : len(r)] = strings[i][: len(r)]
        word_start[i, : len(r)] = starts[i][: len(r)]
    extras: dict[str, np.ndarray] = {
        "attention_mask": attention,
        "loss_mask": attention[:, 1:].copy(),
        "token_strings": token_strings.astype(str),
        "word_start": word_start,
    }
    if corrupt_rows:
        corrupt_tokens = tokens.copy()
        for i, r in enumerate(corrupt_rows):
            corrupt_tokens[i, : len(r)] = r
        extras["corrupt_tokens"] = corrupt_tokens
    for field, ids_ in answers.items():
        if ids_:
            extras[field] = np.asarray(ids_, dtype=np.int64)
    for name, where in positions.items():
        pos = np.asarray(where, dtype=np.int64)
        beyond = np.flatnonzero(pos >= np.asarray([len(r) for r in rows]))
        if beyond.size:
            line = records[int(beyond[0])].line
            raise PromptFileError(path, line, f"position {name!r} is cut off by max_tokens")
        extras[POSITION_PREFIX + name] = pos
    meta = {
        "file": str(path),
        "prepend_bos": prepend_bos,
        "pad_token_id": pad,
        "lengths": [len(r) for r in rows],
        "lines": [r.line for r in records],
    }
    return PromptSet(tokens=tokens, extras=extras, meta=meta, has_bos=prepend_bos)
