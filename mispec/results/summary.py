"""A few headline lines about a results tree: transition steps, strongest heads, final loss."""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.results.summary_pairs import COMPARISON_INPUTS, comparison_lines, is_comparison


def summarize(tree: Any) -> list[str]:
    lines = []
    for child in tree.children.values():
        ds = child.to_dataset()
        model = child.name
        for name, var in ds.data_vars.items():
            fn = var.attrs.get("metric_fn", "")
            if fn in COMPARISON_INPUTS:
                continue
            if is_comparison(var):  # pairs: explicit second-side dims
                lines.extend(comparison_lines(model, name, var))
            elif fn in _PER_SEED and "seed" in var.dims:
                fmt = ".3g" if fn == "transition_size" else ".0f"
                for seed in var.seed.values:
                    v = np.asarray(var.sel(seed=seed).values, dtype=float)
                    none = "none (missed)" if fn.startswith("warning") else "none (no transition)"
                    shown = _value(v, fmt, none=none)
                    if v.size == 1:
                        lines.append(f"{model} seed {seed}: {name} = {shown}")
                    else:
                        over = ", ".join(d for d in var.dims if d != "seed")
                        lines.append(f"{model} seed {seed}: {name} median over {over} = {shown}")
            elif fn == "grokking_phases" and set(var.dims) == {"seed", "phase"}:
                for seed in var.seed.values:
                    ends = ", ".join(
                        f"{ph} ends at step {_value(np.asarray([float(var.sel(seed=seed, phase=ph))]), '.0f', none='- (not reached)')}"
                        for ph in var.phase.values
                    )
                    lines.append(f"{model} seed {seed}: {name}: {ends}")
            elif {"layer", "head", "step"} <= set(var.dims):
                lines.append(_strongest_head(model, name, var.isel(step=-1)))
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


def _strongest_head(model: str, name: str, last: Any) -> str:
    """The strongest head at the last step, SEED BY SEED: head indices name different heads
    in different seeds (see ``head_matching``), so a mean over seeds by index would name a
    head that is nobody's."""
    if _no_value(last.values):
        return f"{model}: {name} at the last step: no value"
    seeds = list(last.seed.values) if "seed" in last.dims else [None]
    parts = []
    for seed in seeds:
        v = last.sel(seed=seed) if seed is not None else last
        who = f"seed {int(seed)} " if seed is not None else ""
        if _no_value(v.values):
            parts.append(f"{who}no value")
            continue
        idx = np.unravel_index(int(np.nanargmax(v.values)), v.shape)
        where = {
            d: (v[d].values[i] if d in v.coords else i) for d, i in zip(v.dims, idx, strict=True)
        }
        parts.append(
            f"{who}layer {int(where['layer'])} head {int(where['head'])} = "
            f"{float(v.values[idx]):.3f}"
        )
    return f"{model}: strongest {name} at the last step: " + ", ".join(parts)


def _value(values: np.ndarray, fmt: str, *, none: str) -> str:
    """The value (median over the finite ones when several), or ``none`` when none is finite."""
    finite = values[np.isfinite(values)]
    return format(float(np.median(finite)), fmt) if finite.size else none


def _no_value(values: Any) -> bool:
    """Nothing to report: no finite number (all NaN, say, or a non-numeric array)."""
    values = np.asarray(values)
    return values.dtype.kind not in "biuf" or bool(np.isnan(values.astype(float)).all())


def _number(values: Any, fmt: str) -> str:
    """``values`` (one number) in ``fmt``; a non-zero value that ``fmt`` would show as 0 (a
    loss of 9e-9 at ``.4f``) in 3 significant digits instead, and never a ``-0``."""
    if _no_value(values):
        return "no value"
    value = float(values) + 0.0  # -0.0 + 0.0 is 0.0
    shown = format(value, fmt)
    if value != 0 and float(shown) == 0:
        return format(value, ".3g")
    return shown.removeprefix("-") if float(shown) == 0 else shown
