"""Calling a metric: inject what its parameters name, then label what it returns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mispec.errors import MetricError, UserError
from mispec.metrics.core import DIMS, MetricDef


def call_metric(
    mdef: MetricDef,
    args: Mapping[str, Any],
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
    here = getattr(mdef.fn, "__mispec__", mdef)  # the definition this process imported
    if mdef.code is not None and here.code != mdef.code:
        raise MetricError(
            f"metric '{mdef.name}': this process imported another version of its code than "
            "the one its cache keys hash (the plugin's file changed after this worker "
            "imported it): restart the workers, then run again",
            node=node,
        )
    try:
        out = mdef.fn(**kwargs)
    except (MetricError, UserError):
        raise  # bad args or prompts for this metric stay user errors (exit 2)
    except KeyboardInterrupt:
        raise  # the user's Ctrl-C stays an interrupt
    except BaseException as exc:  # SystemExit too: a metric never ends the run silently
        raise MetricError(
            f"metric '{mdef.name}' raised {type(exc).__name__}: {exc}", node=node
        ) from exc
    expected = None
    if mdef.reduces is None:  # a cell's inputs are cells: what its dims rule reads
        expected = mdef.dims_for(
            args, {p: getattr(v, "dims", None) for p, v in (inputs or {}).items()}
        )
    return label(mdef, out, node, info=info, expected=expected, units=mdef.units_for(args))


# Dims whose length the model fixes: an unlabelled one has exactly this many entries, a
# labelled one only indices below it.
_MODEL_SIZES = {
    "layer": "n_layers",
    "src_layer": "n_layers",
    "dst_layer": "n_layers",
    "head": "n_heads",
    "src_head": "n_heads",
    "dst_head": "n_heads",
    "neuron": "d_mlp",
}


def label(
    mdef: MetricDef,
    out: Any,
    node: str,
    *,
    info: Any = None,
    expected: tuple[str, ...] | None = None,
    units: str | None = None,
) -> Any:
    """The metric's return value as a DataArray in its declared dims (``expected``: the dims
    its args give, for a ``dims=`` rule), labelled with its ``units`` (those its args give,
    default the record's) unless it set its own, numeric, with model-sized dims of the model's sizes
    (``info``: its ``ModelInfo``) — else a MetricError naming the metric and the node."""
    import xarray as xr

    dims = mdef.dims if mdef.dims is not None else expected
    if isinstance(out, xr.DataArray):
        arr = out
        if dims is not None and set(arr.dims) != set(dims):
            raise MetricError(f"'{mdef.name}' declared dims {dims} but returned {arr.dims}", node)
        if dims is not None:
            arr = arr.transpose(*dims)
    else:
        if dims is None:
            raise MetricError(
                f"'{mdef.name}' declares no dims, so it must return a DataArray", node
            )
        values = _to_numpy(out)
        if values.ndim != len(dims):
            raise MetricError(
                f"'{mdef.name}' declared dims {dims} but returned an array of shape {values.shape}",
                node,
            )
        arr = xr.DataArray(_canonical(values), dims=dims)  # one DataArray, not two
    bad = [d for d in arr.dims if d not in DIMS]
    if bad:
        raise MetricError(f"'{mdef.name}' returned dims {bad} outside the vocabulary {DIMS}", node)
    if np.asarray(arr.values).dtype.kind not in "biufc":
        raise MetricError(
            f"'{mdef.name}' returned values of dtype {arr.dtype}; a metric returns numbers "
            "(float, int, bool or complex)",
            node,
        )
    if info is not None:
        _check_model_sizes(mdef.name, arr, info, node)
    values = np.asarray(arr.values)
    canonical = _canonical(values)
    if canonical.dtype != values.dtype:
        arr = arr.astype(canonical.dtype)
    arr.attrs.setdefault("units", mdef.units if units is None else units)
    arr.attrs.setdefault("description", mdef.description)
    return arr


def _check_model_sizes(name: str, arr: Any, info: Any, node: str) -> None:
    for dim in arr.dims:
        field = _MODEL_SIZES.get(dim)
        size = getattr(info, field, None) if field else None
        if size is None:
            continue
        if dim in arr.coords:
            labels = np.asarray(arr.coords[dim].values)
            if (
                labels.dtype.kind in "iu"
                and labels.size
                and (labels.min() < 0 or labels.max() >= size)
            ):
                raise MetricError(
                    f"'{name}' returned {dim} labels {labels.tolist()}, but the model has "
                    f"{field} = {size}",
                    node,
                )
        elif arr.sizes[dim] != size:
            raise MetricError(
                f"'{name}' returned {arr.sizes[dim]} entries along '{dim}' (dims {arr.dims}, "
                f"shape {arr.shape}), but the model has {field} = {size}",
                node,
            )


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
