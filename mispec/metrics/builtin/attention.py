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
"""

from __future__ import annotations

from typing import Any, Literal

from mispec.lazy import torch
from mispec.metrics.builtin._common import act, check_choice, tokens_of
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
) -> Any:
    """Scores ``[layer, head]`` from ``patterns [layer, batch, head, q, k]`` and ``det [batch, q, k]``.

    Works one layer at a time and never copies a pattern: the excluded entries are removed from
    the targets (``det``) and subtracted from the row sums instead."""
    check_choice("normalize", normalize, ("target_rows", "all_rows"))
    n = det.shape[-1]
    keep = torch.ones(n, n)
    if exclude_bos:
        keep[:, 0] = 0
    if exclude_current_token:
        keep.fill_diagonal_(0)
    det = det * keep  # targets that survive the exclusions
    row_has_target = (det.sum(-1) > 0).float()  # [batch, q]
    out = []
    for pattern in patterns:  # [batch, head, q, k]
        pattern = torch.as_tensor(pattern, dtype=torch.float32)
        num = torch.einsum("bhqk,bqk->bh", pattern, det)
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
        else:
            den = rows.sum(-1)
        out.append((num / den).nanmean(0))  # [head]
    return torch.stack(out)


def _score(acts: Any, prompts: Any, kind: str, **kw: Any) -> Any:
    det = detection_patterns(kind, tokens_of(prompts))
    return head_scores(act(acts, PATTERN), det, **kw).numpy()


@metric(dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention")
def induction_score(
    acts: Any,
    prompts: Any,
    normalize: Literal["target_rows", "all_rows"] = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Any:
    """Induction-head score per (layer, head): attention from each token to the token that
    followed an earlier occurrence of it (``head_detector``'s induction pattern; see the module
    docstring for the two normalisations). Use it on repeated random tokens."""
    return _score(
        acts,
        prompts,
        "induction",
        normalize=normalize,
        exclude_bos=exclude_bos,
        exclude_current_token=exclude_current_token,
    )


@metric(dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention")
def previous_token_score(
    acts: Any,
    prompts: Any,
    normalize: Literal["target_rows", "all_rows"] = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Any:
    """Previous-token-head score per (layer, head): attention from each token to the one just
    before it (``head_detector``'s previous-token pattern)."""
    return _score(
        acts,
        prompts,
        "previous_token",
        normalize=normalize,
        exclude_bos=exclude_bos,
        exclude_current_token=exclude_current_token,
    )


@metric(dims=("layer", "head"), hooks=(PATTERN,), units="fraction of attention")
def duplicate_token_score(
    acts: Any,
    prompts: Any,
    normalize: Literal["target_rows", "all_rows"] = "target_rows",
    exclude_bos: bool = False,
    exclude_current_token: bool = False,
) -> Any:
    """Duplicate-token-head score per (layer, head): attention from each token to earlier
    copies of itself (``head_detector``'s duplicate-token pattern)."""
    return _score(
        acts,
        prompts,
        "duplicate_token",
        normalize=normalize,
        exclude_bos=exclude_bos,
        exclude_current_token=exclude_current_token,
    )
