"""Calling a metric: inject what its parameters name, then label what it returns."""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.errors import MetricError, UserError
from mispec.metrics.core import DIMS, MetricDef


def call_metric(
    mdef: MetricDef,
    args: dict[str, Any],
    *,
    node: str,
    acts: Any = None,
    prompts: Any = None,
    info: Any = None,
    bridge: Any = None,
    inputs: dict[str, Any] | None = None,
) -> Any:
    available = {"acts": acts, "prompts": prompts, "model": info, "bridge": bridge}
    kwargs = {name: available[name] for name in mdef.context}
    kwargs.update(inputs or {})
    kwargs.update(mdef.bind_args(args))
    try:
        out = mdef.fn(**kwargs)
    except (MetricError, UserError):
        raise  # bad args or prompts for this metric stay user errors (exit 2)
    except Exception as exc:
        raise MetricError(
            f"metric '{mdef.name}' raised {type(exc).__name__}: {exc}", node=node
        ) from exc
    return label(mdef, out, node)


def label(mdef: MetricDef, out: Any, node: str) -> Any:
    import xarray as xr

    if isinstance(out, xr.DataArray):
        arr = out
        if mdef.dims is not None and set(arr.dims) != set(mdef.dims):
            raise MetricError(
                f"'{mdef.name}' declared dims {mdef.dims} but returned {arr.dims}", node
            )
        if mdef.dims is not None:
            arr = arr.transpose(*mdef.dims)
    else:
        if mdef.dims is None:
            raise MetricError(
                f"'{mdef.name}' declares no dims, so it must return a DataArray", node
            )
        values = _to_numpy(out)
        if values.ndim != len(mdef.dims):
            raise MetricError(
                f"'{mdef.name}' declared dims {mdef.dims} but returned an array of "
                f"shape {values.shape}",
                node,
            )
        arr = xr.DataArray(_canonical(values), dims=mdef.dims)  # one DataArray, not two
    bad = [d for d in arr.dims if d not in DIMS]
    if bad:
        raise MetricError(f"'{mdef.name}' returned dims {bad} outside the vocabulary {DIMS}", node)
    values = np.asarray(arr.values)
    canonical = _canonical(values)
    if canonical.dtype != values.dtype:
        arr = arr.astype(canonical.dtype)
    arr.attrs.setdefault("units", mdef.units)
    arr.attrs.setdefault("description", mdef.description)
    return arr


def _canonical(values: np.ndarray) -> np.ndarray:
    """Cells hold float64 (real), complex as computed, int64 or bool."""
    kind = values.dtype.kind
    if kind == "f":
        return values.astype(np.float64, copy=False)
    if kind in "iu":
        return values.astype(np.int64, copy=False)
    return values


def _to_numpy(out: Any) -> np.ndarray:
    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy() if out.is_floating_point() else out.cpu().numpy()
    return np.asarray(out)
