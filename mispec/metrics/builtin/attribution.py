"""Attribution patching: activation patching per head, linearised (Nanda 2023; Syed et al.
2023), in two forward passes and one backward pass instead of one pass per head.

Activation patching asks how much the logit difference of the corrupted run moves when one
head's output ``z_h`` is replaced by its clean value. To first order,

    LD(corrupt, z_h := z_h^clean) - LD(corrupt)  ~=  (z_h^clean - z_h^corrupt) . dLD/dz_h

with the gradient taken on the corrupted run (the "denoising" direction of
``activation_patching``). TransformerLens's ``tools.analysis.attribution_patch`` computes the
same estimate per (layer, position, head) node, one prompt pair at a time with a scalar metric
per pair; this metric sums its nodes over positions in one batched pass, with each prompt's own
answers (``tests/unit/test_metrics_patching.py`` checks the two agree). ``attribution_patching`` reports that estimate per (layer, head), summed
over positions and d_head, normalised like ``activation_patching``:
``estimate / (LD_clean - LD_corrupt)`` — so the two can be compared cell by cell; they agree
where the model is close to linear between the clean and corrupted activations and can
differ a lot where it is not (attention saturating). The same NaN mask applies where the
clean-corrupt gap is within ``min_gap_z`` standard errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import answer_logit_diff, answer_positions
from mispec.metrics.builtin.interventions import _clean_and_corrupt, gap_z
from mispec.metrics.core import metric
from mispec.metrics.forward import eval_mode

Z = "blocks.{layer}.attn.hook_z"


def z_gradients(bridge: Any, tokens: Any, prompts: Any, names: list[str]) -> tuple[Any, dict]:
    """The per-prompt logit differences of a run on ``tokens`` and, for each hook in
    ``names``, ``(activation, d mean LD / d activation)`` (detached)."""
    saved: dict[str, Any] = {}

    def keeper(name: str) -> Any:
        def keep(x: Any, hook: Any) -> Any:
            if x.requires_grad:
                x.retain_grad()
            else:  # frozen weights: make the activation itself the leaf to differentiate
                x = x.detach().requires_grad_(True)
            saved[name] = x
            return x

        return keep

    was_training = bool(getattr(bridge, "training", False))
    bridge.eval()
    try:
        with torch.enable_grad():
            logits = bridge.run_with_hooks(tokens, fwd_hooks=[(n, keeper(n)) for n in names])
            # on the CPU, where the answers are (``.cpu()`` is differentiable)
            per_prompt = answer_logit_diff(logits.cpu(), prompts, at=answer_positions(prompts))
            per_prompt.mean().backward()
    finally:
        if was_training:
            bridge.train()
        bridge.zero_grad(set_to_none=True)
    out = {n: (saved[n].detach(), saved[n].grad.detach()) for n in names}
    return per_prompt.detach().cpu(), out


@metric(
    dims=("layer", "head"),
    units="fraction of logit difference restored (first-order estimate)",
    extras=("corrupt_tokens", "answer", "wrong_answer"),
)
def attribution_patching(bridge: Any, prompts: Any, min_gap_z: float = 3.0) -> Any:
    """First-order estimate of ``activation_patching`` per (layer, head) from one gradient
    of the corrupted run (see the module docstring).

    Args:
        min_gap_z: the least clean-minus-corrupted logit difference, in standard errors over the
            prompts (``patching_gap_z``), for the checkpoint to be scored; at or below it every cell
            is NaN (default 3; 0 masks only an exactly zero difference).
    """
    clean, corrupt = _clean_and_corrupt(prompts, "attribution_patching")
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    names = [Z.format(layer=layer) for layer in range(n_layers)]
    device = getattr(bridge.cfg, "device", None)
    with eval_mode(bridge):
        logits, cache = bridge.run_with_cache(
            clean.to(device), names_filter=names, return_cache_object=False
        )
    ld_clean = answer_logit_diff(logits.cpu(), prompts, at=answer_positions(prompts))
    ld_corrupt, grads = z_gradients(bridge, corrupt.to(device), prompts, names)
    values = np.full((n_layers, n_heads), np.nan)
    if abs(gap_z(ld_clean, ld_corrupt)) > min_gap_z:
        for layer, name in enumerate(names):
            z_corrupt, grad = grads[name]
            delta = (cache[name].detach().to(z_corrupt.device) - z_corrupt) * grad  # [b, p, h, d]
            # d mean(LD) / dz is 1/n of each prompt's own gradient: the sum over the batch is
            # the estimate of the change of the mean LD
            values[layer] = delta.sum((0, 1, 3)).float().cpu().numpy()
    gap = float(ld_clean.mean() - ld_corrupt.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        restored = values / gap
    return xr.DataArray(
        restored,
        dims=("layer", "head"),
        coords={"layer": np.arange(n_layers), "head": np.arange(n_heads)},
        attrs={"ld_clean": float(ld_clean.mean()), "ld_corrupt": float(ld_corrupt.mean())},
    )
