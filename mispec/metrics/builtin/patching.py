"""Finer patching: per (layer, head, position), path patching, and backup heads.

**Per (layer, head, position)** — ``head_position_patching``: as ``activation_patching``
(``per="head"``) but one head's output ``blocks.{L}.attn.hook_z[:, p, h]`` at ONE position at
a time (TL's ``patching.get_act_patch_attn_head_out_by_pos``), dims ``(layer, head, pos)``;
the same normalisation ``(LD_patched - LD_corrupt) / (LD_clean - LD_corrupt)`` and the same
NaN mask where the clean-corrupt gap is within ``min_gap_z`` standard errors. The (layer,
position) variant is ``activation_patching`` with ``per: position``.

**Path patching** (Wang et al. 2022, "Interpretability in the Wild", §3.1) measures the
effect of a *sender* head on the output only *through* chosen *receiver* heads' inputs
(their queries, keys or values). For each sender ``s``:

1. run the clean prompts with every head's output frozen to its clean value except ``s``,
   whose output is its value on the corrupted prompts (MLPs recompute, so paths through MLPs
   count, as in the paper); keep the receivers' ``q`` / ``k`` / ``v`` of that run;
2. run the clean prompts again with only the receivers' ``q`` / ``k`` / ``v`` replaced by those
   values (at ``receiver_pos`` only, when given: a named position such as ``END``);
3. report ``(LD_patched - LD_clean) / (LD_clean - LD_corrupt)``: 0 = no effect through these
   receivers, -1 = the whole clean-corrupt gap flows through them (the paper's "noising"
   direction). Senders in or after the last receiver's layer cannot reach it: NaN.

**Backup heads** (Wang et al. §3.4, "backup name movers"): ablate one head (``mean`` over the
prompts at each position, or ``zero``) and record how every later head's direct logit
attribution changes (``mispec.metrics.builtin.dla``, the final LayerNorm's scale of the
ablated run folded in). Dims ``(src_layer, src_head, dst_layer, dst_head)``: the change of
``dst``'s DLA when ``src`` is ablated; positive where ``dst`` takes over (a backup head), NaN
where ``dst`` cannot see ``src`` (same or earlier layer). What ``src`` itself contributed
directly (what a backup would make up for) is ``direct_logit_attribution``. The measure mixes
compensation with plain dependence: a ``dst`` that reads ``src``'s output loses DLA too.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import answer_logit_diff, answer_positions, extra
from mispec.metrics.builtin.dla import fold_final_scale, residual_parts, unembed_direction
from mispec.metrics.builtin.interventions import _clean_and_corrupt, gap_z
from mispec.metrics.core import metric
from mispec.metrics.forward import eval_mode

Z = "blocks.{layer}.attn.hook_z"
PAIR_EXTRAS = ("corrupt_tokens", "answer", "wrong_answer")


def _z_names(n_layers: int) -> list[str]:
    return [Z.format(layer=layer) for layer in range(n_layers)]


def _pair_runs(bridge: Any, prompts: Any, names: list[str], why: str) -> dict[str, Any]:
    """Clean and corrupted runs with ``names`` cached, and the per-prompt logit differences."""
    clean, corrupt = _clean_and_corrupt(prompts, why)
    device = getattr(bridge.cfg, "device", None)
    clean, corrupt = clean.to(device), corrupt.to(device)
    at = answer_positions(prompts)
    with eval_mode(bridge):
        lc, cache_c = bridge.run_with_cache(clean, names_filter=names, return_cache_object=False)
        lx, cache_x = bridge.run_with_cache(corrupt, names_filter=names, return_cache_object=False)
    return {
        "clean": clean,
        "corrupt": corrupt,
        "at": at,
        "cache_clean": cache_c,
        "cache_corrupt": cache_x,
        "ld_clean": answer_logit_diff(lc.cpu(), prompts, at=at),
        "ld_corrupt": answer_logit_diff(lx.cpu(), prompts, at=at),
    }


@metric(
    dims=("layer", "head", "pos"), units="fraction of logit difference restored", extras=PAIR_EXTRAS
)
def head_position_patching(bridge: Any, prompts: Any, min_gap_z: float = 3.0) -> Any:
    """Normalised logit difference after patching one head's clean output at one position
    into the corrupted run, per (layer, head, pos) (see the module docstring).

    Args:
        min_gap_z: the least clean-minus-corrupted logit difference, in standard errors over the
            prompts (``patching_gap_z``), for the checkpoint to be scored; at or below it every cell
            is NaN (default 3; 0 masks only an exactly zero difference).
    """
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    names = _z_names(n_layers)
    run = _pair_runs(bridge, prompts, names, "head_position_patching")
    ld_clean, ld_corrupt = float(run["ld_clean"].mean()), float(run["ld_corrupt"].mean())
    n_pos = run["clean"].shape[1]
    values = np.full((n_layers, n_heads, n_pos), np.nan)
    masked = abs(gap_z(run["ld_clean"], run["ld_corrupt"])) <= min_gap_z
    with eval_mode(bridge):
        for layer, name in enumerate(names if not masked else []):
            source = run["cache_clean"][name]
            for h in range(n_heads):
                for p in range(n_pos):

                    def patch(x: Any, hook: Any, h: int = h, p: int = p, src: Any = source) -> Any:
                        x[:, p, h] = src[:, p, h]
                        return x

                    logits = bridge.run_with_hooks(run["corrupt"], fwd_hooks=[(name, patch)])
                    ld = answer_logit_diff(logits.cpu(), prompts, at=run["at"])
                    values[layer, h, p] = float(ld.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        restored = (values - ld_corrupt) / (ld_clean - ld_corrupt)
    coords = {"layer": np.arange(n_layers), "head": np.arange(n_heads), "pos": np.arange(n_pos)}
    return xr.DataArray(
        restored,
        dims=("layer", "head", "pos"),
        coords=coords,
        attrs={"ld_clean": ld_clean, "ld_corrupt": ld_corrupt},
    )


def _path_extras(receiver_pos: str | None = None) -> tuple[str, ...]:
    return PAIR_EXTRAS + ((f"pos_{receiver_pos}",) if receiver_pos else ())


def _receivers(receivers: Any, n_layers: int, n_heads: int) -> list[tuple[int, int]]:
    out = []
    for r in receivers:
        ok = isinstance(r, list | tuple) and len(r) == 2 and all(isinstance(i, int) for i in r)
        if not ok or not (0 <= r[0] < n_layers and 0 <= r[1] < n_heads):
            raise UserError(
                f"path_patching: receivers are [layer, head] pairs of this model "
                f"({n_layers} layers, {n_heads} heads), got {r!r}"
            )
        out.append((int(r[0]), int(r[1])))
    if not out:
        raise UserError("path_patching: name at least one receiver [layer, head]")
    return out


def _check_receivers(receivers: Any) -> dict[str, str]:
    if isinstance(receivers, list) and not receivers:
        return {"receivers": "name at least one receiver head [layer, head]"}
    return {}


@metric(
    dims=("layer", "head"),
    units="fraction of logit difference (noising)",
    extras=_path_extras,
    indexes={"receivers": ("layer", "head")},
    check=_check_receivers,
)
def path_patching(
    bridge: Any,
    prompts: Any,
    receivers: list[list[int]],
    receiver_input: Literal["q", "k", "v"] = "q",
    receiver_pos: str | None = None,
    min_gap_z: float = 3.0,
) -> Any:
    """Wang et al.'s path patching: each sender head's effect on the logit difference through
    the ``receivers``' queries (keys, values), per sender (layer, head); see the module
    docstring. ``receiver_pos`` names a position extra (``END`` reads ``pos_END``).

    Args:
        receivers: the receiver heads, as ``[layer, head]`` pairs of this model (at least one); only
            senders in layers before the last receiver's are scored.
        receiver_input: which input of the receivers carries the sender's effect: ``q`` (queries),
            ``k`` (keys) or ``v`` (values).
        receiver_pos: patch the receivers' input only at this named position (``END`` reads the
            ``pos_END`` extra); ``null``: at every position.
        min_gap_z: the least clean-minus-corrupted logit difference, in standard errors over the
            prompts (``patching_gap_z``), for the checkpoint to be scored; at or below it every cell
            is NaN (default 3; 0 masks only an exactly zero difference).
    """
    if receiver_input not in ("q", "k", "v"):
        raise UserError(f"path_patching: receiver_input must be q, k or v, got {receiver_input!r}")
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    targets = _receivers(receivers, n_layers, n_heads)
    rx_names = sorted({f"blocks.{L}.attn.hook_{receiver_input}" for L, _ in targets})
    names = _z_names(n_layers)
    run = _pair_runs(bridge, prompts, names, "path_patching")
    ld_clean, ld_corrupt = float(run["ld_clean"].mean()), float(run["ld_corrupt"].mean())
    n = run["clean"].shape[0]
    rows = torch.arange(n)
    pos = (
        torch.as_tensor(extra(prompts, f"pos_{receiver_pos}", why="receiver_pos")).long()
        if receiver_pos
        else None
    )
    values = np.full((n_layers, n_heads), np.nan)
    last = max(L for L, _ in targets)
    masked = abs(gap_z(run["ld_clean"], run["ld_corrupt"])) <= min_gap_z
    with eval_mode(bridge):
        for s_layer in range(last if not masked else 0):
            for s_head in range(n_heads):
                frozen = []
                for layer, name in enumerate(names):
                    value = run["cache_clean"][name].clone()
                    if layer == s_layer:
                        value[:, :, s_head] = run["cache_corrupt"][name][:, :, s_head]

                    def freeze(x: Any, hook: Any, value: Any = value) -> Any:
                        return value

                    frozen.append((name, freeze))
                _, step1 = _run_cached(bridge, run["clean"], frozen, rx_names)
                hooks = []
                for name in rx_names:
                    layer = int(name.split(".")[1])
                    heads = [h for tl, h in targets if tl == layer]

                    def receive(
                        x: Any, hook: Any, new: Any = step1[name], heads: Any = heads
                    ) -> Any:
                        for h in heads:
                            if pos is None:
                                x[:, :, h] = new[:, :, h]
                            else:
                                r, p = rows.to(x.device), pos.to(x.device)
                                x[r, p, h] = new[r, p, h]
                        return x

                    hooks.append((name, receive))
                logits = bridge.run_with_hooks(run["clean"], fwd_hooks=hooks)
                ld = answer_logit_diff(logits.cpu(), prompts, at=run["at"])
                values[s_layer, s_head] = float(ld.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = (values - ld_clean) / (ld_clean - ld_corrupt)
    coords = {"layer": np.arange(n_layers), "head": np.arange(n_heads)}
    return xr.DataArray(
        effect,
        dims=("layer", "head"),
        coords=coords,
        attrs={"ld_clean": ld_clean, "ld_corrupt": ld_corrupt},
    )


def _run_cached(bridge: Any, tokens: Any, hooks: list, names: list[str]) -> tuple[Any, Any]:
    """A forward pass under ``hooks`` caching ``names``."""
    with bridge.hooks(fwd_hooks=hooks):
        return bridge.run_with_cache(tokens, names_filter=names, return_cache_object=False)


@metric(
    dims=("src_layer", "src_head", "dst_layer", "dst_head"),
    units="change of direct logit attribution (logits)",
    extras=("answer", "wrong_answer"),
)
def backup_heads(bridge: Any, prompts: Any, method: Literal["mean", "zero"] = "mean") -> Any:
    """The change of every later head's direct logit attribution when one head is ablated,
    per (src head ablated, dst head): positive where dst compensates (see the module
    docstring).

    Args:
        method: how the source head is ablated: ``mean`` replaces its ``hook_z`` by its mean over
            the prompts at each position (padding left out); ``zero`` by zeros.
    """
    if method not in ("mean", "zero"):
        raise UserError(f"backup_heads: method must be mean or zero, got {method!r}")
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    names = _z_names(n_layers)
    u, _const = unembed_direction(bridge, prompts, "logit_diff")

    def head_dla(parts: dict[str, Any]) -> Any:  # [layer, head]
        folded = fold_final_scale(bridge, parts["heads"], parts["scale"])
        return (folded * u).sum(-1).mean(-1)

    base = head_dla(residual_parts(bridge, prompts))
    means = {}
    if method == "mean":
        from mispec.metrics.builtin._common import real_tokens, tokens_of
        from mispec.metrics.builtin.interventions import _mean_over_prompts

        device = getattr(bridge.cfg, "device", None)
        with eval_mode(bridge):
            _, cache = bridge.run_with_cache(
                tokens_of(prompts).to(device), names_filter=names, return_cache_object=False
            )
        means = {n: _mean_over_prompts(cache[n], real_tokens(prompts)) for n in names}
    values = np.full((n_layers, n_heads, n_layers, n_heads), np.nan)
    for s_layer in range(n_layers - 1):
        name = names[s_layer]
        for s_head in range(n_heads):

            def ablate(x: Any, hook: Any, h: int = s_head, mean: Any = means.get(name)) -> Any:
                x[:, :, h] = 0.0 if mean is None else mean[:, :, h]
                return x

            with bridge.hooks(fwd_hooks=[(name, ablate)]):
                after = head_dla(residual_parts(bridge, prompts))
            values[s_layer, s_head, s_layer + 1 :] = (after - base)[s_layer + 1 :].numpy()
    coords = {
        "src_layer": np.arange(n_layers),
        "src_head": np.arange(n_heads),
        "dst_layer": np.arange(n_layers),
        "dst_head": np.arange(n_heads),
    }
    return xr.DataArray(values, dims=tuple(coords), coords=coords)
