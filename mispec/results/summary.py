"""A few headline lines about a results tree: transition steps, strongest heads, final loss."""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.results.summary_pairs import COMPARISON_INPUTS, comparison_lines, is_comparison


def summarize(tree: Any) -> list[str]:
    """Headline lines per model. A sweep's points are never pooled: a value per seed is
    told per point (``n_layers=1: 390, n_layers=2: 534``), and the strongest head names the
    point it is in."""
    lines = []
    for child in tree.children.values():
        ds = child.to_dataset()
        model = child.name
        sweep = [str(d) for d in np.atleast_1d(child.attrs.get("sweep_dims", [])).tolist()]
        for name, var in ds.data_vars.items():
            fn = var.attrs.get("metric_fn", "")
            if fn in COMPARISON_INPUTS:
                continue
            if is_comparison(var):  # pairs: explicit second-side dims
                lines.extend(comparison_lines(model, name, var))
            elif fn in _PER_SEED and "seed" in var.dims:
                fmt = ".3g" if fn == "transition_size" else ".0f"
                none = _NONE.get(fn, "none (no transition)")
                points = [d for d in sweep if d in var.dims]
                over = ", ".join(str(d) for d in var.dims if d != "seed" and d not in points)
                median = f" median over {over}" if over else ""
                for seed in var.seed.values:
                    one = var.sel(seed=seed)
                    if points:  # each point's own value, never a median over the points
                        short = none.split(" (")[0]  # "never", "none": the name says of what
                        told = ", ".join(
                            f"{_point(points, key)}: "
                            f"{_value(np.asarray(one.sel(at).values, dtype=float), fmt, none=short)}"
                            for key, at in _points(one, points)
                        )
                        lines.append(f"{model} seed {seed}: {name}{median}: {told}")
                    else:
                        shown = _value(np.asarray(one.values, dtype=float), fmt, none=none)
                        lines.append(f"{model} seed {seed}: {name}{median} = {shown}")
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


# what a NaN of each says: an event that did not happen within the run
_NONE = {
    "crossing_step": "never (not crossed)",
    "crossing_width": "never (not crossed)",
    "warning_step": "none (missed)",
    "warning_lead": "none (missed)",
}

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
        # any other dim (a sweep's point) is named: the strongest over it, and where it is
        point = " ".join(f"{d}={where[d]}" for d in v.dims if d not in ("layer", "head"))
        parts.append(
            f"{who}{point + ' ' if point else ''}layer {int(where['layer'])} "
            f"head {int(where['head'])} = {float(v.values[idx]):.3f}"
        )
    return f"{model}: strongest {name} at the last step: " + ", ".join(parts)


def _points(var: Any, dims: list[str]) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Every sweep point of ``var`` over ``dims``, in coordinate order: its coordinates, and
    the selection that picks it."""
    import itertools

    axes = [var[d].values.tolist() for d in dims]
    return [(key, dict(zip(dims, key, strict=True))) for key in itertools.product(*axes)]


def _point(dims: list[str], key: tuple[Any, ...]) -> str:
    return " ".join(f"{d}={v}" for d, v in zip(dims, key, strict=True))


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
