"""A few headline lines about a results tree: transition steps, strongest heads, final loss."""

from __future__ import annotations

from typing import Any

import numpy as np


def summarize(tree: Any) -> list[str]:
    lines = []
    for child in tree.children.values():
        ds = child.to_dataset()
        model = child.name
        for name, var in ds.data_vars.items():
            fn = var.attrs.get("metric_fn", "")
            if fn in _PER_SEED and "seed" in var.dims:
                fmt = ".3g" if fn == "transition_size" else ".0f"
                for seed in var.seed.values:
                    v = np.asarray(var.sel(seed=seed).values, dtype=float)
                    none = "none (missed)" if fn.startswith("warning") else "none (no transition)"
                    shown = _value(v, fmt, none=none)
                    if v.size == 1:
                        lines.append(f"{model} seed {seed}: {name} = {shown}")
                    else:
                        lines.append(f"{model} seed {seed}: {name} median over heads = {shown}")
            elif {"layer", "head", "step"} <= set(var.dims):
                last = var.isel(step=-1).mean("seed") if "seed" in var.dims else var.isel(step=-1)
                if _no_value(last.values):
                    lines.append(f"{model}: {name} at the last step: no value")
                    continue
                idx = np.unravel_index(int(np.nanargmax(last.values)), last.shape)
                where = dict(zip(last.dims, idx, strict=True))
                lines.append(
                    f"{model}: strongest {name} at the last step: layer {where['layer']} "
                    f"head {where['head']} = {float(last.values[idx]):.3f}"
                )
            elif var.dims == ("seed", "step") or set(var.dims) == {"seed", "step"}:
                final = var.isel(step=-1)
                lines.append(
                    f"{model}: {name} at step {int(var.step[-1])}: "
                    + ", ".join(
                        f"seed {int(s)} {_number(final.sel(seed=s).values, '.4f')}"
                        for s in var.seed.values
                    )
                )
    return lines


_PER_SEED = (
    "transition_step",
    "transition_size",
    "crossing_step",
    "crossing_width",
    "warning_step",
    "warning_lead",
    "false_alarms",
)


def _value(values: np.ndarray, fmt: str, *, none: str) -> str:
    """The value (median over the finite ones when several), or ``none`` when none is finite."""
    finite = values[np.isfinite(values)]
    return format(float(np.median(finite)), fmt) if finite.size else none


def _no_value(values: Any) -> bool:
    """Nothing to report: no finite number (all NaN, say, or a non-numeric array)."""
    values = np.asarray(values)
    return values.dtype.kind not in "biuf" or bool(np.isnan(values.astype(float)).all())


def _number(values: Any, fmt: str) -> str:
    return "no value" if _no_value(values) else format(float(values), fmt)
