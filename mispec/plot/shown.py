"""What a plot shows, and how it got there: every dim a plot takes out of a result before
drawing it goes through ``Shown``, which keeps a record of it ("mean over pos", "max over
layer, head", "against step 1000"); titles and axis labels are built from that record, so a
plot never reduces a dim without saying which and how.

Also here: the colour scale of a map (a signed quantity gets a diverging map centred on 0),
each seed's own steps (a seed is drawn over the checkpoints it has values at) and the note on
a panel that has no value at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

How = Literal["mean", "max", "min", "median", "sum"]
NO_VALUES = "no values (all NaN)"


@dataclass(frozen=True)
class Shown:
    """A result as drawn: ``data`` after the ``reductions`` listed, in order."""

    data: Any
    reductions: tuple[str, ...] = ()

    @classmethod
    def of(cls, var: Any) -> Shown:
        """A result before any plot reduction; a ``reduce`` metric's own reduction (its attr
        ``reduced``) is named too."""
        upstream = var.attrs.get("reduced")
        return cls(var, (str(upstream),) if upstream else ())

    def reduce(self, dims: Iterable[str], how: How = "mean") -> Shown:
        """``how`` over ``dims`` (NaN skipped), recorded; dims it lacks are ignored."""
        dims = [d for d in dims if d in self.data.dims]
        if not dims:
            return self
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():  # an all-NaN slice is NaN, said on the plot
                warnings.simplefilter("ignore", RuntimeWarning)
                out = getattr(self.data, how)(dims, skipna=True, keep_attrs=True)
        return Shown(out, (*self.reductions, f"{how} over {', '.join(dims)}"))

    def keep_only(self, keep: Iterable[str], how: How = "mean") -> Shown:
        """``how`` over every dim not in ``keep``, recorded."""
        wanted = set(keep)
        return self.reduce([d for d in self.data.dims if d not in wanted], how)

    def pick(self, data: Any, note: str) -> Shown:
        """Another view of the data (a selection, a matching), with what it is."""
        return Shown(data, (*self.reductions, note))

    def title(self, base: str) -> str:
        return f"{base} ({'; '.join(self.reductions)})" if self.reductions else base

    def value_label(self, name: str | None = None) -> str:
        """``name [units]`` of the values drawn."""
        units = self.data.attrs.get("units", "")
        name = str(self.data.name if name is None else name)
        return f"{name} [{units}]" if units else name


def against_step_b(shown: Shown) -> Shown:
    """A comparison against fixed steps (``pairs: {steps: last}``: dim ``step_b``, one
    finite entry per cell) as one value per cell, saying which step(s) it compared with."""
    v = shown.data
    if "step_b" not in v.dims:
        return shown
    targets = [int(s) for s in v.step_b.values]
    if len(targets) == 1:
        return shown.pick(v.isel(step_b=0, drop=True), f"against step {targets[0]}")
    with np.errstate(all="ignore"):
        one = v.max("step_b", skipna=True, keep_attrs=True)  # the one finite entry per cell
    listed = ", ".join(map(str, targets))
    return shown.pick(one, f"each seed against its own step_b ({listed})")


def is_signed(var: Any) -> bool:
    """Signed values: the result says so (attr ``signed``) or its values have both signs."""
    if var.attrs.get("signed") is True:
        return True
    values = np.asarray(var.values, dtype=float)
    finite = values[np.isfinite(values)]
    return bool(finite.size and finite.min() < 0 < finite.max())


def colour_scale(var: Any) -> tuple[str, Any]:
    """``(colormap name, norm)`` for a map of ``var``: a signed quantity on a diverging map
    centred on 0 with symmetric limits (one colour for 0, both signs as far), else a
    sequential map over the finite values."""
    from matplotlib.colors import Normalize, TwoSlopeNorm

    values = np.asarray(var.values, dtype=float)
    finite = values[np.isfinite(values)]
    if is_signed(var):
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        bound = bound or 1.0
        return "RdBu_r", TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return "viridis", Normalize(vmin=lo, vmax=hi)


def steps_with_values(v: Any) -> Any:
    """The steps of ``v`` (one seed: ``step`` plus other dims) at which it has any finite
    value: a seed is drawn over its own checkpoints, not broken at another seed's extra
    steps (``refine:`` adds checkpoints per seed)."""
    values = np.asarray(v.transpose("step", ...).values, dtype=float)
    has = np.isfinite(values.reshape(v.sizes["step"], -1)).any(axis=1)
    return v.isel(step=np.flatnonzero(has))


def has_values(var: Any) -> bool:
    return bool(np.isfinite(np.asarray(var.values, dtype=float)).any())


def say_no_values(ax: Any) -> None:
    """A panel whose values are all NaN says so (and has no legend)."""
    ax.text(0.5, 0.5, NO_VALUES, transform=ax.transAxes, ha="center", va="center", color="0.3")


def legend_if_any(ax: Any, **kwargs: Any) -> None:
    """A legend only when something drawn has a label."""
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(**kwargs)
