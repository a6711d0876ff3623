"""How far each attention head's weights moved from a reference checkpoint.

Made for fine-tuning (``init_from``): the reference is the parent's checkpoint the child
started from, read as a ``parameters`` cell (the per-checkpoint weights that the comparison
metric ``weight_distance`` reads too; :mod:`mispec.metrics.builtin.weight_comparisons`)
through a metric input from another model: ``{metric: weights, model: base, step: last}``.
``weight_distance`` gives the change per ``state_dict`` entry or per layer; this metric
splits the attention weights by head:

``head_weight_change`` (dims ``layer, head``) is ``||w - w_ref|| / ||w_ref||`` over one head's
rows of the Q, K and V weights and biases and its columns of the O weight (the O bias is
shared by the heads and belongs to none), for models in mispec's native layout
(``blocks.{l}.attn.{q,k,v,o}.weight``, i.e. ``train:`` models). A reference head of norm 0
(a zeroed head) gives ``inf`` where the head moved and NaN where it did not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.errors import UserError
from mispec.lazy import torch, xr
from mispec.metrics.core import InputDims, metric

_PARAMS = InputDims(("component", "element"), why="a checkpoint's weights (parameters)")


@metric(
    dims=("layer", "head"),
    inputs=("reference",),
    input_dims={"reference": _PARAMS},
    units="relative L2",
)
def head_weight_change(bridge: Any, reference: Any) -> Any:
    """``||w - w_ref|| / ||w_ref||`` of each head's Q, K, V rows and O columns against a
    ``parameters`` cell of the reference checkpoint."""
    from mispec.models.weight_targets import head_entries

    rows = {str(n): i for i, n in enumerate(reference.coords["component"].values)}
    ref_values = np.asarray(reference.values, dtype=np.float64)
    state = bridge.state_dict()
    cfg = bridge.cfg
    layers, heads, d_head = int(cfg.n_layers), int(cfg.n_heads), int(cfg.d_head)
    out = np.zeros((layers, heads))
    for layer in range(layers):
        for head in range(heads):
            diff = norm = 0.0
            for name, slices in head_entries(layer, head, d_head).items():
                if name not in state or name not in rows:
                    raise UserError(
                        f"head_weight_change: '{name}' is missing from this model or the "
                        "reference (it reads the native layout of models mispec trains)"
                    )
                now = state[name].detach().to("cpu", torch.float64).numpy()
                ref_row = ref_values[rows[name]]
                size = now.size
                if np.isnan(ref_row[:size]).any() or not np.isnan(ref_row[size:]).all():
                    raise UserError(
                        f"head_weight_change: '{name}' has another shape in the reference "
                        "(models of different architectures)"
                    )
                ref = ref_row[: now.size].reshape(now.shape)
                index = [slice(None)] * now.ndim
                for dim, lo, hi in slices or ():
                    index[dim] = slice(lo, hi)
                a, b = now[tuple(index)], ref[tuple(index)]
                diff += float(((a - b) ** 2).sum())
                norm += float((b**2).sum())
            with np.errstate(divide="ignore", invalid="ignore"):
                out[layer, head] = np.sqrt(diff) / np.sqrt(norm)
    return xr.DataArray(
        out, dims=("layer", "head"), coords={"layer": np.arange(layers), "head": np.arange(heads)}
    )
