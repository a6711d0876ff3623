"""Layer norms and linear layers seed by seed under ``vmap``: bitwise what one seed computes.

Training S seeds together runs one module's forward under ``torch.func.vmap`` over stacked
parameters (:mod:`mispec.models.training_batched`). Most ops of a native toy model then give
each seed bitwise its one-at-a-time values and gradients, but two batching rules round
differently: ``F.layer_norm`` with per-seed weights (vmap normalises without the affine part
and applies ``* weight + bias`` itself, so their gradients are summed in another order), and
``F.linear`` for some shapes (the unembedding's weight gradient with a vocabulary of 10, as a
batched matmul, differed by 3e-8). That would not matter, but Adam turns rounding noise into
whole steps where the true gradient is zero: an attention key bias (softmax ignores a shift,
so its gradient is noise around 0, and each update moves it by ~lr in the noise's direction).
Within 24 updates such entries differed by 1e-3 between batched and one-at-a-time training.

So :func:`seedwise` swaps a template module's ``nn.LayerNorm`` and ``nn.Linear`` layers for
:class:`SeedwiseLayerNorm` and :class:`SeedwiseLinear`, whose forwards are the custom ops
``mispec::seed_layer_norm`` and ``mispec::seed_linear``: under vmap their rules run the
ordinary ``F.layer_norm`` / ``F.linear`` once per seed on that seed's slice, so autograd
records exactly the kernels one-at-a-time training runs (S small kernels instead of one for
these layers; attention, embeddings, softmax and the optimizer stay batched). Called outside
vmap, each is the plain op.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F


@torch.library.custom_op("mispec::seed_layer_norm", mutates_args=())
def seed_layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """``F.layer_norm`` over the last dimension (the op's body outside vmap)."""
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def _per_seed(
    info: Any, in_dims: tuple[int | None, ...], x: torch.Tensor, w: torch.Tensor,
    b: torch.Tensor, eps: float,
) -> tuple[torch.Tensor, int]:  # fmt: skip
    """The vmap rule: ``F.layer_norm`` on each seed's slice, stacked along dim 0."""
    n = info.batch_size

    def seeds(t: torch.Tensor, dim: int | None) -> torch.Tensor:
        return t.movedim(dim, 0) if dim is not None else t.expand(n, *t.shape)

    xs, ws, bs = seeds(x, in_dims[0]), seeds(w, in_dims[1]), seeds(b, in_dims[2])
    width = (xs.shape[-1],)
    return torch.stack([F.layer_norm(xs[i], width, ws[i], bs[i], eps) for i in range(n)]), 0


torch.library.register_vmap("mispec::seed_layer_norm", _per_seed)


@torch.library.custom_op("mispec::seed_linear", mutates_args=())
def seed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` (the op's body outside vmap)."""
    return F.linear(x, weight, bias)


def _linear_per_seed(
    info: Any, in_dims: tuple[int | None, ...], x: torch.Tensor, w: torch.Tensor,
    b: torch.Tensor | None,
) -> tuple[torch.Tensor, int]:  # fmt: skip
    """The vmap rule: ``F.linear`` on each seed's slice, stacked along dim 0."""
    n = info.batch_size
    xs, ws = _seeds(x, in_dims[0], n), _seeds(w, in_dims[1], n)
    bs = None if b is None else _seeds(b, in_dims[2], n)
    out = [F.linear(xs[i], ws[i], None if bs is None else bs[i]) for i in range(n)]
    return torch.stack(out), 0


torch.library.register_vmap("mispec::seed_linear", _linear_per_seed)


def _seeds(t: torch.Tensor, dim: int | None, n: int) -> torch.Tensor:
    return t.movedim(dim, 0) if dim is not None else t.expand(n, *t.shape)


class SeedwiseLinear(torch.nn.Linear):
    """``nn.Linear`` (same parameters, same names) computed seed by seed under vmap."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return seed_linear(x, self.weight, self.bias)


class SeedwiseLayerNorm(torch.nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters, same names) computed seed by seed under vmap."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None or self.bias is None or len(self.normalized_shape) != 1:
            return super().forward(x)
        return seed_layer_norm(x, self.weight, self.bias, self.eps)


def seedwise(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose layer norms are :class:`SeedwiseLayerNorm` (a template for
    ``functional_call``: its own parameter values are never used)."""
    template = copy.deepcopy(model)
    for module in template.modules():
        if type(module) is torch.nn.LayerNorm:
            module.__class__ = SeedwiseLayerNorm
        elif type(module) is torch.nn.Linear:
            module.__class__ = SeedwiseLinear
    return template
