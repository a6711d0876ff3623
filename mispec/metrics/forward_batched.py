"""Several checkpoints of one architecture in ONE forward call, each with the activations
:func:`mispec.metrics.forward.run_forward` gives it alone.

On a GPU a toy model leaves the device idle: one checkpoint's forward pass is a few small
kernels. :func:`run_forward_batched` stacks the weights of ``K`` checkpoints (``[K, ...]``
per state-dict entry) and maps ``torch.func.functional_call`` of the live bridge over them
with ``torch.func.vmap``: every matmul becomes one batched matmul over the ``K`` checkpoints.
The hooked activations are collected INSIDE the mapped function and returned from it (a
tensor that escapes ``vmap`` through a side dict is an error), then split per checkpoint into
exactly ``run_forward``'s layout: ``{template: float32 CPU tensor}``, per-layer templates
stacked ``[layer, batch, ...]``, pseudo hooks (``next_logprob`` …) computed per checkpoint from
its logits by the same :func:`~mispec.metrics.forward.pseudo_hooks`.

The bridge's state-dict keys are not module paths (TransformerLens translates them), and its
module tree reaches one parameter through several aliases (``blocks.0`` and ``layers.0`` are
the same module). ``functional_call`` is therefore given every (module, attribute) slot that
holds a state-dict tensor, by one path each, with ``tie_weights=False``: with its default
tie-resolution the aliases made it restore the wrong tensor on exit (measured on
TransformerLens 4: the bridge was left holding batched tensors).

Memory: a call holds, per checkpoint, its stacked weights, one micro-batch of every hook
point's output and of the logits (an upper bound: ``no_grad`` frees most of them as it goes),
and the hooked outputs of all prompts. :func:`bytes_per_checkpoint` measures those from one
probe forward pass of one prompt; callers size ``K`` to a memory budget with it.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from mispec.lazy import torch
from mispec.metrics.core import PSEUDO_HOOKS
from mispec.metrics.forward import (
    _place,
    eval_mode,
    expand_hooks,
    is_layer_template,
    micro_batching,
    pseudo_hooks,
    resolve_templates,
)

# bridge -> {state-dict key: module paths holding that tensor}, learned once per bridge
_SLOTS: weakref.WeakKeyDictionary[Any, dict[str, list[str]]] = weakref.WeakKeyDictionary()


def weight_slots(bridge: Any) -> dict[str, list[str]]:
    """Each state-dict key of ``bridge`` → the module paths (one per distinct (module,
    attribute) slot) whose parameter or buffer IS that tensor."""
    if bridge in _SLOTS:
        return _SLOTS[bridge]
    owner = {id(t): key for key, t in bridge.state_dict(keep_vars=True).items()}
    slots: dict[str, list[str]] = {key: [] for key in owner.values()}
    seen: set[tuple[int, str]] = set()
    for path, module in bridge.named_modules(remove_duplicate=False):
        for kind in (module._parameters, module._buffers):
            for attr, tensor in kind.items():
                key = owner.get(id(tensor)) if tensor is not None else None
                if key is None or (id(module), attr) in seen:
                    continue
                seen.add((id(module), attr))
                slots[key].append(f"{path}.{attr}" if path else attr)
    unreachable = [k for k, paths in slots.items() if not paths]
    if unreachable:
        raise ValueError(f"state-dict entries with no module slot: {unreachable[:5]}")
    _SLOTS[bridge] = slots
    return slots


def stack_states(bridge: Any, states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{module path: [K, ...] tensor}`` on the bridge's device, in each live tensor's dtype
    (the cast ``load_state_dict`` / an in-place ``copy_`` would make). Raises ``ValueError``
    when a state's keys or shapes differ from the bridge's."""
    live = bridge.state_dict(keep_vars=True)
    slots = weight_slots(bridge)
    stacked: dict[str, Any] = {}
    for key, target in live.items():
        values = [s.get(key) for s in states]
        if any(v is None or tuple(v.shape) != tuple(target.shape) for v in values):
            raise ValueError(f"checkpoint weights do not match the model at '{key}'")
        batch = torch.stack([torch.as_tensor(v).to(target.device, target.dtype) for v in values])
        for path in slots[key]:
            stacked[path] = batch
    if any(set(s) != set(live) for s in states):
        raise ValueError("checkpoint weights have other keys than the model")
    return stacked


def run_forward_batched(
    bridge: Any,
    states: Sequence[Mapping[str, Any]],
    tokens: Any,
    templates: Sequence[str],
    *,
    batch_size: int | None = None,
    device: Any = None,
) -> list[dict[str, Any]]:
    """One vmapped forward call per micro-batch for ALL ``states`` (bridge-keyed state
    dicts of ``bridge``'s architecture); returns one ``run_forward``-shaped dict per state,
    in order. The bridge's own weights are left as they were."""
    real, pseudo, names, flat = resolve_templates(bridge, templates)
    tokens, n, step, device = micro_batching(bridge, tokens, batch_size, device)
    outs: list[dict[str, Any]] = [{} for _ in states]
    with eval_mode(bridge):
        weights = stack_states(bridge, states)
        for start in range(0, n, step):
            chunk = tokens[start : start + step]
            chunk_dev = chunk.to(device) if device is not None else chunk
            logits, hooked = _vmapped_forward(bridge, weights, chunk_dev, flat)
            values = dict(zip(flat, hooked, strict=True))
            for i, out in enumerate(outs):
                for t in real:
                    if is_layer_template(t):
                        for layer, name in enumerate(names[t]):
                            _place(out, t, values[name][i], start, n, layer=layer,
                                   n_layers=len(names[t]))  # fmt: skip
                    else:
                        _place(out, t, values[t][i], start, n)
                for t, value in pseudo_hooks(logits[i], chunk_dev, pseudo).items():
                    _place(out, t, value, start, n)
            del logits, hooked, values
    for out in outs:  # a whole-batch hook is a view of the [K, ...] output: its own copy
        for t, value in out.items():
            if value._base is not None:
                out[t] = value.clone()
    return outs


def _vmapped_forward(
    bridge: Any, weights: dict[str, Any], tokens: Any, names: Sequence[str]
) -> tuple[Any, tuple[Any, ...]]:
    """``(logits [K, batch, pos, vocab], hooked values [K, ...] in ``names`` order)``."""

    def one(w: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
        cache: dict[str, Any] = {}

        def keeper(name: str) -> Any:
            def hook(value: Any, hook: Any) -> None:
                cache[name] = value[0] if isinstance(value, tuple) else value

            return hook

        with bridge.hooks(fwd_hooks=[(name, keeper(name)) for name in names]):
            logits = torch.func.functional_call(bridge, w, (tokens,), tie_weights=False)
        return logits, tuple(cache[name] for name in names)  # returned: nothing escapes

    result: tuple[Any, tuple[Any, ...]] = torch.func.vmap(one)(weights)
    return result


def bytes_per_checkpoint(
    bridge: Any, tokens: Any, templates: Sequence[str], *, batch_size: int | None = None
) -> int:
    """What one more checkpoint adds to a batched call, in bytes: its stacked weights, one
    micro-batch of every hook point's output and of the logits (from a probe forward pass
    of the first prompt), and the hooked outputs (float32) of every prompt."""
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    n, rows = int(tokens.shape[0]), min(int(batch_size or tokens.shape[0]), int(tokens.shape[0]))
    wanted = set(n for names in expand_hooks(list(templates), int(bridge.cfg.n_layers)).values()
                 for n in names)  # fmt: skip
    per_prompt_all = 0  # every hook point's output, one prompt
    per_prompt_kept = 0  # the hooked ones, as float32
    seen: set[int] = set()

    def record(value: Any, hook: Any) -> None:
        nonlocal per_prompt_all, per_prompt_kept
        value = value[0] if isinstance(value, tuple) else value
        if id(hook) in seen or not hasattr(value, "numel"):
            return
        seen.add(id(hook))
        per_prompt_all += value.numel() * value.element_size()
        if hook.name in wanted:
            per_prompt_kept += value.numel() * 4

    device = getattr(bridge.cfg, "device", None)
    probe = tokens[:1].to(device) if device is not None else tokens[:1]
    with eval_mode(bridge), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hook points TransformerLens gates are skipped
        logits = bridge.run_with_hooks(probe, fwd_hooks=[(lambda _name: True, record)])
    logit_bytes = logits.numel() * logits.element_size()
    per_prompt_kept += logits.numel() * 4 if wanted & set(PSEUDO_HOOKS) else 0
    weights = sum(t.numel() * t.element_size() for t in bridge.state_dict().values())
    return int(weights + rows * (per_prompt_all + logit_bytes) + n * per_prompt_kept)
