"""Check a study's claims (``claims:``) against its assembled results: reads the results
tree only (no model, no forward pass), so a fully cached re-run checks them as well.

Each claim gives a :class:`Verdict`: ``pass``, ``fail``, ``unevaluable`` (a NaN where a
number was needed, a missing model, metric, label or seed: never a pass), and for a claim
marked ``expect: fail``, ``expected failure`` or ``unexpected pass``. The verdict carries
what was measured, as a short string, beside the claim's sentence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mispec.results.claim_logic import overall, quantify, truth
from mispec.results.claim_values import Unevaluable, computed_pairs, measured, select
from mispec.spec.claims import ClaimSpec

FAILING = ("fail", "unevaluable", "unexpected pass")
MARKS = {
    "pass": "✓",
    "fail": "✗",
    "unevaluable": "?",
    "expected failure": "✓ (expected failure)",
    "unexpected pass": "✗ (unexpected pass)",
}


@dataclass(frozen=True)
class Verdict:
    """One claim's verdict: its name, sentence, check kind, status and measured values; for
    a plot, the model and metric it reads and the range it claims (``low``/``high``)."""

    name: str
    text: str
    kind: str
    status: str
    measured: str
    model: str | None = None
    metric: str | None = None
    low: float | None = None
    high: float | None = None
    reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def line(self) -> str:
        """``✓ name: text — measured`` (the summary's line for this claim)."""
        extra = f" ({self.reason})" if self.reason else ""
        return f"{MARKS[self.status]} {self.name}: {self.text} — {self.measured}{extra}"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def check_claims(tree: Any, claims: dict[str, ClaimSpec]) -> list[Verdict]:
    """Every claim's verdict on ``tree`` (an ``xarray.DataTree``, one child per model)."""
    return [check_claim(tree, name, claim) for name, claim in claims.items()]


def check_claim(tree: Any, name: str, claim: ClaimSpec) -> Verdict:
    first = claim.operands()[0][1]
    low, high = _range(claim)
    try:
        arrays = [select(tree, op) for _, op in claim.operands()]
        truths = computed_pairs(_truths(claim, arrays))  # a pairs: seeds result's pairs only
        truths = quantify(
            truths, [d for d in truths.dims if d not in ("seed", "pair", "step")], claim.points
        )
        truths = quantify(truths, ["step"], claim.steps)
        truths = quantify(truths, ["seed", "pair"], claim.seeds)
        value = overall(truths)
        shown = measured(claim, arrays)
        model = arrays[0].attrs.get("_model")
    except Unevaluable as exc:
        value, shown, model = float("nan"), str(exc), first.model
    status = _status(value, claim.expect)
    return Verdict(
        name,
        claim.text,
        claim.kind,
        status,
        shown,
        model=model,
        metric=first.metric,
        low=low,
        high=high,
        reason=claim.reason,
    )


def _status(value: float, expect: str) -> str:
    """A claim's verdict from its truth value (1, 0 or NaN: unknown). A claim marked
    ``expect: fail`` is known not to hold in this study (its ``reason`` says why): failing or
    unknown (e.g. the event never happens in the budget, so an order of events cannot be
    judged) is the expected failure, holding is the surprise. Every other claim passes only
    on a known 1."""
    if expect == "fail":
        return "unexpected pass" if value == 1 else "expected failure"
    if np.isnan(value):
        return "unevaluable"
    return "pass" if value == 1 else "fail"


def _range(claim: ClaimSpec) -> tuple[float | None, float | None]:
    if claim.between is not None:
        return claim.between
    return claim.above, claim.below


def _truths(claim: ClaimSpec, arrays: list[Any]) -> Any:
    """Per entry: does the check hold (1), not hold (0) or cannot say (NaN)?"""
    import xarray as xr

    kind = claim.kind
    if kind == "value":
        v = arrays[0].astype(float)
        if claim.is_ == "nan":
            return v.copy(data=truth(np.isnan(v.values), True))
        if claim.is_ == "finite":
            return v.copy(data=truth(np.isfinite(v.values), True))
        return _in_range(claim, v)
    if kind in ("before", "compare"):
        a, b = xr.align(arrays[0].astype(float), arrays[1].astype(float), join="outer")
        if kind == "before" or claim.compare is None or claim.compare[1] == "<":
            holds = a.values < b.values - claim.margin
        else:
            holds = a.values > b.values + claim.margin
        known = np.isfinite(a.values) & np.isfinite(b.values)
        return a.copy(data=truth(holds, known))
    if kind == "argmax":
        return _argmax_truth(claim, arrays[0])
    counts = _counts(claim, arrays[0])
    return _in_range(claim, counts)


def _in_range(claim: ClaimSpec, v: Any) -> Any:
    low, high = _range(claim)
    x = v.values
    with np.errstate(invalid="ignore"):
        ok = np.ones(x.shape, dtype=bool)
        if claim.between is not None:
            ok &= (x >= low) & (x <= high)
        if claim.above is not None:
            ok &= x > claim.above
        if claim.below is not None:
            ok &= x < claim.below
    return v.copy(data=truth(ok, np.isfinite(x)))


def _over(claim: ClaimSpec, v: Any) -> tuple[Any, np.ndarray]:
    """``v`` with the ``over`` dims last, as an array of shape (rest..., n over)."""
    missing = [d for d in claim.over if d not in v.dims]
    if missing:
        raise Unevaluable(f"no dim {missing} in the results (dims {list(v.dims)})")
    rest = [d for d in v.dims if d not in claim.over]
    v = v.transpose(*rest, *claim.over)
    arr = np.asarray(v.values, dtype=float)
    return v, arr.reshape(*arr.shape[: len(rest)], -1)


def _counts(claim: ClaimSpec, v: Any) -> Any:
    v, flat = _over(claim, v)
    finite = np.isfinite(flat)
    counts = np.where(finite.any(axis=-1), ((flat != 0) & finite).sum(axis=-1), np.nan)
    out = v.isel({d: 0 for d in claim.over}, drop=True).copy(data=counts.astype(float))
    out.attrs["_over"] = True
    return out


def argmax_labels(claim: ClaimSpec, v: Any) -> tuple[Any, list[dict[str, Any] | None]]:
    """Per entry of the dims left: the labels of the largest value over ``over`` (None when
    all are NaN)."""
    v, flat = _over(claim, v)
    sizes = [v.sizes[d] for d in claim.over]
    rest = v.isel({d: 0 for d in claim.over}, drop=True)
    where: list[dict[str, Any] | None] = []
    for row in flat.reshape(-1, flat.shape[-1]):
        if not np.isfinite(row).any():
            where.append(None)
            continue
        idx = np.unravel_index(int(np.nanargmax(row)), sizes)
        where.append({d: v[d].values[i].item() for d, i in zip(claim.over, idx, strict=True)})
    return rest, where


def _argmax_truth(claim: ClaimSpec, v: Any) -> Any:
    rest, where = argmax_labels(claim, v)
    ok = [w is not None and all(_same(w[d], lab) for d, lab in claim.at.items()) for w in where]
    known = [w is not None for w in where]
    shape = rest.shape
    return rest.astype(float).copy(data=truth(np.reshape(ok, shape), np.reshape(known, shape)))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float | np.number) and isinstance(b, int | float):
        return bool(np.isclose(float(a), float(b)))
    return str(a) == str(b)
