"""Three-valued logic for claims: each entry of a check is true (1), false (0) or unknown
(NaN: a value was NaN where a number was needed, a label or seed was missing), and a
quantifier over a dim follows Kleene's rules, so an unknown entry never turns into a pass:

* ``every``: false if one entry is false, else unknown if one is unknown, else true;
* ``any``: true if one entry is true, else unknown if one is unknown, else false;
* a fraction ``f``: true when at least ``ceil(f·n)`` entries are true, false when even the
  unknown ones could not reach that, else unknown.

Nothing to quantify (an empty selection) is unknown.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

TRUE, FALSE, UNKNOWN = 1.0, 0.0, float("nan")


def truth(condition: Any, known: Any) -> np.ndarray:
    """``condition`` where ``known``, else unknown (NaN), as a float array."""
    condition, known = np.asarray(condition, dtype=bool), np.asarray(known, dtype=bool)
    return np.where(known, condition.astype(float), np.nan)


def needed(quantifier: str | float, n: int) -> int:
    """How many of ``n`` entries must be true."""
    if quantifier == "every":
        return n
    if quantifier == "any":
        return 1
    return max(1, math.ceil(float(quantifier) * n - 1e-9))


def quantify(values: Any, dims: list[str], quantifier: str | float) -> Any:
    """Reduce a DataArray of truth values over ``dims`` (each dim at once) by ``quantifier``."""
    dims = [d for d in dims if d in values.dims]
    if not dims:
        return values
    stacked = values.stack(_q=dims)
    arr = np.asarray(stacked.transpose(..., "_q").values, dtype=float)
    n = arr.shape[-1]
    true = (arr == 1).sum(axis=-1)
    unknown = np.isnan(arr).sum(axis=-1)
    k = needed(quantifier, n)
    out = np.where(true >= k, TRUE, np.where(true + unknown < k, FALSE, UNKNOWN))
    if n == 0:
        out = np.full_like(out, UNKNOWN, dtype=float)
    rest = stacked.isel(_q=0, drop=True)
    return rest.copy(data=np.asarray(out, dtype=float))


def overall(values: Any) -> float:
    """The single truth value left after quantifying (NaN for an empty or unknown one)."""
    arr = np.asarray(values, dtype=float).ravel()
    return float(arr[0]) if arr.size == 1 else UNKNOWN
