"""More attention-pattern families, and a declarative one whose rule the spec states.

Each family is a detection pattern ``D[q, k]`` per prompt (1 where a head of that family
should attend from query ``q`` to key ``k``), scored exactly as the head scores of
:mod:`mispec.metrics.builtin.attention` (``head_scores``: ``normalize``, ``exclude_bos``,
``exclude_current_token``; padding never counts). Dims ``(layer, head)``.

* ``start_of_word_score`` — from a token that continues a word to the word's first token
  (``word_start`` extra of text prompt sets: a head that gathers a multi-token word at its
  end). Queries that start a word have no target.
* ``open_bracket_score`` — to the most recent still-open bracket before the query
  (``token_strings`` extra; ``brackets`` gives the open/close characters in pairs, default
  ``()[]{}``, one stack for all kinds, each character of a token counted in order).
* ``bos_score`` — to the first token (BOS), from every query after it.
* ``self_token_score`` — to the query's own position (the "same-token" family; attention to
  EARLIER copies of the token is ``duplicate_token_score``).
* ``attention_to`` — declarative: the key is every position that satisfies ALL the conditions
  the spec gives: ``offset`` (``k = q + offset``), ``key_position`` (a named position such as
  ``IO``: the ``pos_IO`` extra), ``key_regex`` (token strings matching a regular expression),
  ``key_token`` (a token id), ``same_token`` (``tokens[k] == tokens[q]``, ``k < q``); and only
  from the query ``query_position`` when given. Head-class attention of IOI prompts is
  ``attention_to`` with ``query_position: END`` and ``key_position: IO`` (or ``S1``, ``S2``):
  the attention each head pays from END to that name.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import numpy as np

from mispec.errors import UserError
from mispec.lazy import torch
from mispec.metrics.builtin._common import act, extra, real_tokens, tokens_of
from mispec.metrics.builtin.attention import PATTERN, head_scores
from mispec.metrics.core import metric

Normalize = Literal["target_rows", "all_rows"]


def _scores(acts: Any, prompts: Any, det: Any, normalize: str, bos: bool, current: bool) -> Any:
    patterns = act(acts, PATTERN)
    return head_scores(
        patterns,
        det,
        normalize=normalize,
        exclude_bos=bos,
        exclude_current_token=current,
        real=real_tokens(prompts),
    ).numpy()


def start_of_word_targets(word_start: np.ndarray) -> Any:
    """``D [batch, q, k]``: 1 at the first token of q's word, for q that continues a word."""
    batch, n = word_start.shape
    det = torch.zeros(batch, n, n)
    for b in range(batch):
        start = -1
        for q in range(n):
            if word_start[b, q]:
                start = q
            elif start >= 0:
                det[b, q, start] = 1.0
    return det


def open_bracket_targets(token_strings: np.ndarray, brackets: str) -> Any:
    """``D [batch, q, k]``: 1 at the most recent open bracket still open before q."""
    if len(brackets) % 2 or not brackets:
        raise UserError(f"brackets must be open/close pairs such as '()[]', got {brackets!r}")
    opens, closes = set(brackets[0::2]), set(brackets[1::2])
    batch, n = token_strings.shape
    det = torch.zeros(batch, n, n)
    for b in range(batch):
        stack: list[int] = []
        for q in range(n):
            if stack:
                det[b, q, stack[-1]] = 1.0
            for c in str(token_strings[b, q]):
                if c in opens:
                    stack.append(q)
                elif c in closes and stack:
                    stack.pop()
    return det


@metric(
    dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention", extras=("word_start",)
)
def start_of_word_score(
    acts: Any,
    prompts: Any,
    normalize: Normalize = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Any:
    """Attention from a word's later tokens to its first token, per (layer, head).

    Args:
        normalize: ``target_rows``: mean over only the query rows that have a target (a perfect
            head scores ~1); ``all_rows``: the fraction of all the head's attention that lands on
            targets (TransformerLens ``head_detector``'s score).
        exclude_bos: drop attention to key 0 (the BOS token) from the pattern and the targets.
        exclude_current_token: drop attention from each token to itself (``k == q``) from the
            pattern and the targets.
    """
    det = start_of_word_targets(extra(prompts, "word_start", why="start_of_word_score"))
    return _scores(acts, prompts, det, normalize, exclude_bos, exclude_current_token)


@metric(
    dims=("layer", "head"),
    hooks=(PATTERN,),
    units="fraction of attention",
    extras=("token_strings",),
)
def open_bracket_score(
    acts: Any,
    prompts: Any,
    brackets: str = "()[]{}",
    normalize: Normalize = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Any:
    """Attention to the most recent still-open bracket, per (layer, head).

    Args:
        brackets: the bracket pairs, opening then closing character of each (default ``()[]{}``).
        normalize: ``target_rows``: mean over only the query rows that have a target (a perfect
            head scores ~1); ``all_rows``: the fraction of all the head's attention that lands on
            targets (TransformerLens ``head_detector``'s score).
        exclude_bos: drop attention to key 0 (the BOS token) from the pattern and the targets.
        exclude_current_token: drop attention from each token to itself (``k == q``) from the
            pattern and the targets.
    """
    strings = extra(prompts, "token_strings", why="open_bracket_score")
    det = open_bracket_targets(strings, brackets)
    return _scores(acts, prompts, det, normalize, exclude_bos, exclude_current_token)


@metric(dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention")
def bos_score(acts: Any, prompts: Any, normalize: Normalize = "target_rows") -> Any:
    """Attention to the first token from every later query, per (layer, head).

    Args:
        normalize: ``target_rows``: mean over only the query rows that have a target (a perfect
            head scores ~1); ``all_rows``: the fraction of all the head's attention that lands on
            targets (TransformerLens ``head_detector``'s score).
    """
    batch, n = np.asarray(prompts.tokens).shape
    det = torch.zeros(batch, n, n)
    det[:, 1:, 0] = 1.0
    return _scores(acts, prompts, det, normalize, False, False)


@metric(dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention")
def self_token_score(
    acts: Any, prompts: Any, normalize: Normalize = "target_rows", exclude_bos: bool = False
) -> Any:
    """Attention of each query to its own position, per (layer, head).

    Args:
        normalize: ``target_rows``: mean over only the query rows that have a target (a perfect
            head scores ~1); ``all_rows``: the fraction of all the head's attention that lands on
            targets (TransformerLens ``head_detector``'s score).
        exclude_bos: drop attention to key 0 (the BOS token) from the pattern and the targets.
    """
    batch, n = np.asarray(prompts.tokens).shape
    det = torch.eye(n).expand(batch, n, n).clone()
    return _scores(acts, prompts, det, normalize, exclude_bos, False)


def _attention_to_extras(
    key_position: str | None = None,
    query_position: str | None = None,
    key_regex: str | None = None,
) -> tuple[str, ...]:
    names = [f"pos_{p}" for p in (key_position, query_position) if p]
    return tuple(names + (["token_strings"] if key_regex else []))


def declared_targets(
    prompts: Any,
    *,
    offset: int | None = None,
    key_position: str | None = None,
    key_regex: str | None = None,
    key_token: int | None = None,
    same_token: bool = False,
    query_position: str | None = None,
) -> Any:
    """``D [batch, q, k]`` of the declarative family (see the module docstring)."""
    rules = (offset, key_position, key_regex, key_token)
    if all(r is None for r in rules) and not same_token:
        raise UserError(
            "attention_to needs a key rule: offset, key_position, key_regex, key_token "
            "or same_token"
        )
    tokens = tokens_of(prompts)
    batch, n = tokens.shape
    q = torch.arange(n)[:, None]
    k = torch.arange(n)[None, :]
    det = (k <= q).expand(batch, n, n).clone()
    if offset is not None:
        det &= (k == q + int(offset)).expand(batch, n, n)
    if key_position is not None:
        at = torch.as_tensor(extra(prompts, f"pos_{key_position}", why="key_position")).long()
        det &= k.expand(batch, 1, n) == at[:, None, None]
    if key_regex is not None:
        pattern = re.compile(key_regex)
        strings = extra(prompts, "token_strings", why="key_regex")
        hits = torch.as_tensor([[bool(pattern.search(str(s))) for s in row] for row in strings])
        det &= hits[:, None, :]
    if key_token is not None:
        det &= (tokens == int(key_token))[:, None, :]
    if same_token:
        det &= (tokens[:, :, None] == tokens[:, None, :]) & (k < q)
    if query_position is not None:
        at = torch.as_tensor(extra(prompts, f"pos_{query_position}", why="query_position")).long()
        det &= q.expand(batch, n, 1) == at[:, None, None]
    return det.float()


@metric(
    dims=("layer", "head"),
    hooks=(PATTERN,),
    units="fraction of attention",
    extras=_attention_to_extras,
    indexes={"key_token": "vocab"},
)
def attention_to(
    acts: Any,
    prompts: Any,
    offset: int | None = None,
    key_position: str | None = None,
    key_regex: str | None = None,
    key_token: int | None = None,
    same_token: bool = False,
    query_position: str | None = None,
    normalize: Normalize = "target_rows",
    exclude_bos: bool = False,
) -> Any:
    """Attention to the keys a declared rule picks, per (layer, head); e.g. IOI head classes:
    ``{query_position: END, key_position: IO}`` (see the module docstring).

    Args:
        offset: keys at ``k = q + offset`` (``-1`` the previous token; only keys at or before the
            query count, so a positive offset matches nothing).
        key_position: the key at a named position of each prompt (``IO`` reads the ``pos_IO``
            extra).
        key_regex: keys whose token string (``token_strings`` extra) matches this regular expression
            (``re.search``).
        key_token: keys holding this token id.
        same_token: keys holding the query's own token, strictly before it (earlier copies).
        query_position: count only the query at this named position (``pos_<name>`` extra);
            ``null``: every query.
        normalize: ``target_rows``: mean over only the query rows that have a target (a perfect head
            scores ~1); ``all_rows``: the fraction of all the head's attention that lands on targets
            (TransformerLens ``head_detector``'s score).
        exclude_bos: drop attention to key 0 (the BOS token) from the pattern and the targets.
    """
    det = declared_targets(
        prompts,
        offset=offset,
        key_position=key_position,
        key_regex=key_regex,
        key_token=key_token,
        same_token=same_token,
        query_position=query_position,
    )
    return _scores(acts, prompts, det, normalize, exclude_bos, False)
