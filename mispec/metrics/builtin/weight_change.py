"""How far a checkpoint's weights moved from a reference checkpoint, per component or per head.

Made for fine-tuning (``init_from``): the reference is the parent's checkpoint the child
started from, read through a metric input from another model (``{metric: weights, model:
base, step: last}``). A snapshot metric records the weights to compare against, and two
change metrics compare the current checkpoint with it:

* ``weight_vector`` (dims ``entry``): every floating-point ``state_dict`` entry of the
  checkpoint, flattened in ``state_dict`` order (tensors that share storage count once);
  ``weight_change`` (dims ``component``): ``||w - w_ref|| / ||w_ref||`` over each component —
  per top-level group (``embed``, ``blocks.0``, …, ``unembed``) or per ``state_dict`` entry —
  the L2 distance relative to the reference's norm.
* ``head_weight_change`` (dims ``layer, head``): the same relative distance per head — its
  rows of the Q, K, V weights and biases and its columns of O — against a ``weight_vector``
  (for models in mispec's native layout, i.e. ``train:`` models).

Both sides must have the same architecture (same ``state_dict`` layout); a size mismatch is
an error naming both sizes. A reference of norm 0 (a zeroed head) gives ``inf`` where the
weights moved and NaN where they did not.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import check_choice
from mispec.metrics.core import metric


def _entries(bridge: Any) -> list[tuple[str, np.ndarray]]:
    """(name, flat float64 values) of every floating ``state_dict`` entry, shared ones once."""
    out, seen = [], set()
    for name, value in bridge.state_dict().items():
        if not getattr(value, "is_floating_point", lambda: False)():
            continue
        ident = (value.untyped_storage().data_ptr(), value.storage_offset())
        if ident in seen:
            continue
        seen.add(ident)
        out.append((name, value.detach().to("cpu", torch.float64).reshape(-1).numpy()))
    return out


def _group(name: str, group: str) -> str:
    if group == "parameter":
        return name
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" and len(parts) > 1 else parts[0]


def _relative(diff_sq: np.ndarray, ref_sq: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(diff_sq) / np.sqrt(ref_sq)


def _same_size(what: str, mine: int, theirs: int) -> None:
    if mine != theirs:
        raise UserError(
            f"{what}: this checkpoint has {mine} weights, the reference {theirs}: compare models "
            "of the same architecture"
        )


@metric(dims=("entry",), units="weight")
def weight_vector(bridge: Any) -> Any:
    """Every floating-point weight of the checkpoint, flattened in ``state_dict`` order (the
    reference ``weight_change`` compares against)."""
    flat = np.concatenate([v for _, v in _entries(bridge)]).astype(np.float32)
    return xr.DataArray(flat, dims=("entry",))


@metric(dims=("component",), inputs=("reference",), units="relative L2")
def weight_change(
    bridge: Any, reference: Any, group: Literal["layer", "parameter"] = "layer"
) -> Any:
    """``||w - w_ref|| / ||w_ref||`` per component (``group``: ``layer`` — ``embed``,
    ``blocks.0``, …, ``unembed`` — or ``parameter``), against a ``weight_vector`` cell."""
    check_choice("group", group, ("layer", "parameter"))
    entries = _entries(bridge)
    ref = np.asarray(reference.values, dtype=np.float64).reshape(-1)
    _same_size("weight_change", sum(v.size for _, v in entries), ref.size)
    diff: dict[str, float] = {}
    norm: dict[str, float] = {}
    at = 0
    for name, values in entries:
        r = ref[at : at + values.size]
        at += values.size
        key = _group(name, group)
        diff[key] = diff.get(key, 0.0) + float(((values - r) ** 2).sum())
        norm[key] = norm.get(key, 0.0) + float((r**2).sum())
    names = list(diff)
    values = _relative(np.array([diff[k] for k in names]), np.array([norm[k] for k in names]))
    return xr.DataArray(
        values, dims=("component",), coords={"component": np.array(names, dtype=object)}
    )


@metric(dims=("layer", "head"), inputs=("reference",), units="relative L2")
def head_weight_change(bridge: Any, reference: Any) -> Any:
    """``||w - w_ref|| / ||w_ref||`` of each head's Q, K, V rows (weights and biases) and O
    columns, against a ``weight_vector`` cell (models with mispec's native layout, i.e.
    ``train:`` models: ``blocks.{l}.attn.{q,k,v,o}.weight``)."""
    from mispec.models.weight_targets import head_entries

    entries = _entries(bridge)
    ref_flat = np.asarray(reference.values, dtype=np.float64).reshape(-1)
    _same_size("head_weight_change", sum(v.size for _, v in entries), ref_flat.size)
    shapes = {name: tuple(t.shape) for name, t in bridge.state_dict().items()}
    now, ref, at = {}, {}, 0
    for name, values in entries:
        now[name] = values.reshape(shapes[name])
        ref[name] = ref_flat[at : at + values.size].reshape(shapes[name])
        at += values.size
    cfg = bridge.cfg
    layers, heads, d_head = int(cfg.n_layers), int(cfg.n_heads), int(cfg.d_head)
    out = np.zeros((layers, heads))
    for layer in range(layers):
        for head in range(heads):
            diff = norm = 0.0
            for name, slices in head_entries(layer, head, d_head).items():
                if name not in now:
                    raise UserError(
                        f"head_weight_change: this model has no '{name}' (it reads the native "
                        "layout of models mispec trains)"
                    )
                index = [slice(None)] * now[name].ndim
                for dim, lo, hi in slices or ():
                    index[dim] = slice(lo, hi)
                a, b = now[name][tuple(index)], ref[name][tuple(index)]
                diff += float(((a - b) ** 2).sum())
                norm += float((b**2).sum())
            out[layer, head] = _relative(np.array(diff), np.array(norm))
    return xr.DataArray(
        out, dims=("layer", "head"), coords={"layer": np.arange(layers), "head": np.arange(heads)}
    )
