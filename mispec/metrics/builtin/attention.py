"""Attention-pattern head scores: induction, previous-token and duplicate-token heads.

A head type is a *detection pattern* ``D[q, k]`` per prompt — 1 where a head of that type
should attend from query ``q`` to key ``k`` — exactly TransformerLens's ``head_detector``
definitions (``get_*_detection_pattern``), computed here for the whole batch at once:

* previous token:  ``D[q, q-1] = 1``;
* duplicate token: ``D[q, k] = 1`` for ``k < q`` with ``tokens[k] == tokens[q]``;
* induction:       ``D[q, k] = 1`` for ``1 <= k <= q`` with ``tokens[k-1] == tokens[q]`` (attend
  to the token AFTER an earlier copy of the current token).

The score of head ``(layer, head)`` on one prompt, with attention pattern ``A[q, k]``:

* ``normalize="all_rows"`` — ``head_detector``'s "mul" score: ``sum(A * D) / sum(A)``, the
  fraction of ALL the head's attention that lands on targets. Query rows without any target
  (e.g. the first half of a repeated-tokens prompt for induction) count in the denominator,
  so even a perfect head scores only about the fraction of rows that have a target.
* ``normalize="target_rows"`` (default) — the same ratio over only the query rows that HAVE
  at least one target: the mean attention mass a query with something to attend to puts on
  it. A perfect induction head scores ~1 on repeated random tokens.

``exclude_bos`` / ``exclude_current_token`` drop attention to key 0 / to ``k == q`` from both
the pattern and the targets, as in ``head_detector`` (a row whose only target is excluded has
no target). Scores are computed per prompt and averaged over the batch (``head_detector``
with a list of prompts does the same); prompts with no target row are skipped (NaN if none).

Padding never counts: in a prompt set of different lengths (right-padded, with an
``attention_mask`` extra) a padded query row is no row at all (neither a target row nor one of
"all rows") and a padded key is never a target, so each prompt scores exactly what it scores
alone, unpadded.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Literal

from mispec.lazy import torch
from mispec.metrics.builtin._common import act, check_choice, real_tokens, tokens_of
from mispec.metrics.core import metric

PATTERN = "blocks.{layer}.attn.hook_pattern"
HEAD_TYPES = ("previous_token", "duplicate_token", "induction")


def detection_patterns(kind: str, tokens: Any) -> Any:
    """``[batch, pos, pos]`` float 0/1 detection patterns for ``tokens [batch, pos]``."""
    check_choice("head type", kind, HEAD_TYPES)
    batch, n = tokens.shape
    if kind == "previous_token":
        det = torch.zeros(n, n)
        det[1:, :-1] = torch.eye(n - 1)
        return det.expand(batch, n, n)
    strictly_lower = torch.ones(n, n, dtype=torch.bool).tril(-1)
    dup = (tokens[:, :, None] == tokens[:, None, :]) & strictly_lower  # [batch, q, k]
    if kind == "duplicate_token":
        return dup.float()
    ind = torch.zeros(batch, n, n, dtype=torch.bool)
    ind[:, :, 1:] = dup[:, :, :-1]  # D[q, k] = dup[q, k-1]
    return ind.float()


def head_scores(
    patterns: Any,
    det: Any,
    *,
    normalize: str = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
    real: Any = None,
) -> Any:
    """Scores ``[layer, head]`` from ``patterns [layer, batch, head, q, k]`` and ``det [batch, q, k]``.

    ``real``: ``[batch, pos]`` bool, False at padding (None: no padding). Works one layer at a
    time and never copies a pattern: the excluded entries are removed from the targets
    (``det``) and subtracted from the row sums instead, and the numerator reads only the
    pattern entries that are targets (``det`` is sparse)."""
    check_choice("normalize", normalize, ("target_rows", "all_rows"))
    targets = surviving_targets(det, exclude_bos, exclude_current_token, real)
    return _scores(patterns, targets, normalize, exclude_bos, exclude_current_token)


def surviving_targets(
    det: Any, exclude_bos: bool, exclude_current_token: bool, real: Any = None
) -> Any:
    """The targets that survive the exclusions and the padding, sparse: ``(b, q, k, weight)``
    of every non-zero of ``det`` (a detection pattern has a handful per query row, a pattern
    has ``pos`` entries per row), ``row_has_target [batch, q]`` and the real query rows
    ``[batch, q]`` (float; None when ``real`` is None: every row is real)."""
    n = det.shape[-1]
    keep = torch.ones(n, n)
    if exclude_bos:
        keep[:, 0] = 0
    if exclude_current_token:
        keep.fill_diagonal_(0)
    det = det * keep
    rows = None
    if real is not None:  # a padded query or key is never a target
        real = torch.as_tensor(real).bool()
        det = det * (real[:, :, None] & real[:, None, :]).float()
        rows = real.float()
    b, q, k = det.nonzero(as_tuple=True)
    return (b, q, k, det[b, q, k]), (det.sum(-1) > 0).float(), rows  # [nnz] x4, [batch, q] x2


def _scores(
    patterns: Any, targets: Any, normalize: str, exclude_bos: bool, exclude_current_token: bool
) -> Any:
    (b, q, k, weight), row_has_target, real_rows = targets
    out = []
    for pattern in patterns:  # [batch, head, q, k]
        pattern = torch.as_tensor(pattern, dtype=torch.float32)
        # sum over (q, k) of pattern * det, from the targets only: [nnz, head] -> [batch, head]
        hits = pattern[b, :, q, k] * weight[:, None]
        num = torch.zeros(pattern.shape[:2]).index_add_(0, b, hits)
        rows = pattern.sum(-1)  # [batch, head, q] mass per query row, minus the exclusions:
        if exclude_bos:
            rows = rows - pattern[..., 0]
        if exclude_current_token:
            rows = rows - torch.diagonal(pattern, dim1=-2, dim2=-1)
        if exclude_bos and exclude_current_token:
            rows[..., 0] = rows[..., 0] + pattern[..., 0, 0]  # (0, 0) was subtracted twice
        if normalize == "target_rows":
            den = (rows * row_has_target[:, None, :]).sum(-1)
            num = torch.where(row_has_target.any(-1)[:, None], num, torch.nan)
        elif real_rows is not None:  # every real row; padded rows are no rows
            den = (rows * real_rows[:, None, :]).sum(-1)
        else:
            den = rows.sum(-1)
        out.append((num / den).nanmean(0))  # [head]
    return torch.stack(out)


# The targets depend only on the prompt tokens and the exclusions, not on the checkpoint: a
# sweep builds them once per prompt set instead of once per checkpoint. Small LRU, bounded
# in bytes (four [nnz] tensors per entry).
_TARGETS: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_TARGETS_MAX_ENTRIES = 8
_TARGETS_MAX_BYTES = 64 << 20
_TARGETS_LOCK = threading.Lock()


def _cached_targets(
    kind: str, tokens: Any, real: Any, exclude_bos: bool, exclude_current: bool
) -> Any:
    key = (
        kind,
        exclude_bos,
        exclude_current,
        tuple(tokens.shape),
        hashlib.blake2b(tokens.numpy().tobytes(), digest_size=16).digest(),
        None if real is None else hashlib.blake2b(real.numpy().tobytes(), digest_size=16).digest(),
    )
    with _TARGETS_LOCK:  # Dask worker threads share it
        if key in _TARGETS:
            _TARGETS.move_to_end(key)
            return _TARGETS[key]
    targets = surviving_targets(
        detection_patterns(kind, tokens), exclude_bos, exclude_current, real
    )
    if targets[0][0].nelement() * 32 <= _TARGETS_MAX_BYTES:
        with _TARGETS_LOCK:
            _TARGETS[key] = targets
            while len(_TARGETS) > _TARGETS_MAX_ENTRIES:
                _TARGETS.popitem(last=False)
    return targets


def _score(
    acts: Any,
    prompts: Any,
    kind: str,
    *,
    normalize: str,
    exclude_bos: bool,
    exclude_current_token: bool,
) -> Any:
    check_choice("head type", kind, HEAD_TYPES)
    check_choice("normalize", normalize, ("target_rows", "all_rows"))
    tokens = tokens_of(prompts)
    targets = _cached_targets(
        kind, tokens, real_tokens(prompts), exclude_bos, exclude_current_token
    )
    patterns = act(acts, PATTERN)
    return _scores(patterns, targets, normalize, exclude_bos, exclude_current_token).numpy()


@metric(dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention", version=2)
def induction_score(
    acts: Any,
    prompts: Any,
    normalize: Literal["target_rows", "all_rows"] = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Any:
    """Induction-head score per (layer, head): attention from each token to the token that
    followed an earlier occurrence of it (``head_detector``'s induction pattern; see the module
    docstring for the two normalisations). Use it on repeated random tokens.

    Args:
        normalize: ``target_rows``: mean over only the query rows that have a target (a perfect
            head scores ~1); ``all_rows``: TransformerLens ``head_detector``'s score, the fraction
            of all the head's attention that lands on targets.
        exclude_bos: drop attention to key 0 (the BOS token) from the pattern and the targets.
        exclude_current_token: drop attention from each token to itself (``k == q``) from the
            pattern and the targets.
    """
    return _score(
        acts,
        prompts,
        "induction",
        normalize=normalize,
        exclude_bos=exclude_bos,
        exclude_current_token=exclude_current_token,
    )


@metric(dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention", version=2)
def previous_token_score(
    acts: Any,
    prompts: Any,
    normalize: Literal["target_rows", "all_rows"] = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Any:
    """Previous-token-head score per (layer, head): attention from each token to the one just
    before it (``head_detector``'s previous-token pattern).

    Args:
        normalize: ``target_rows``: mean over only the query rows that have a target (a perfect
            head scores ~1); ``all_rows``: TransformerLens ``head_detector``'s score, the fraction
            of all the head's attention that lands on targets.
        exclude_bos: drop attention to key 0 (the BOS token) from the pattern and the targets.
        exclude_current_token: drop attention from each token to itself (``k == q``) from the
            pattern and the targets.
    """
    return _score(
        acts,
        prompts,
        "previous_token",
        normalize=normalize,
        exclude_bos=exclude_bos,
        exclude_current_token=exclude_current_token,
    )


@metric(dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention", version=2)
def duplicate_token_score(
    acts: Any,
    prompts: Any,
    normalize: Literal["target_rows", "all_rows"] = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Any:
    """Duplicate-token-head score per (layer, head): attention from each token to earlier
    copies of itself (``head_detector``'s duplicate-token pattern).

    Args:
        normalize: ``target_rows``: mean over only the query rows that have a target (a perfect
            head scores ~1); ``all_rows``: TransformerLens ``head_detector``'s score, the fraction
            of all the head's attention that lands on targets.
        exclude_bos: drop attention to key 0 (the BOS token) from the pattern and the targets.
        exclude_current_token: drop attention from each token to itself (``k == q``) from the
            pattern and the targets.
    """
    return _score(
        acts,
        prompts,
        "duplicate_token",
        normalize=normalize,
        exclude_bos=exclude_bos,
        exclude_current_token=exclude_current_token,
    )
