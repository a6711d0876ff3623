"""The shared forward pass: ONE hooked forward pass (``run_with_hooks``) per micro-batch for all the hooks that the
activation metrics of a (checkpoint, prompt set) need.

Hook *templates* name what a metric reads: ``blocks.{layer}.attn.hook_pattern`` stands for that
hook in every layer and arrives stacked over layers FIRST (``[layer, batch, head, q, k]``); a
template without ``{layer}`` (``hook_embed``, ``ln_final.hook_normalized``) arrives as the hook's
own ``[batch, ...]`` tensor. Pseudo hooks (``PSEUDO_HOOKS``) are computed here from the logits,
so that metrics such as ``loss`` never make the cache hold ``[batch, pos, vocab]`` logits:

* ``next_logprob`` ``[batch, pos-1]``: ``log p(tokens[:, i+1] | tokens[:, :i+1])``, computed
  in float64 as ``(logit[next] - max) - log1p(sum of exp(logit - max) over the other
  entries)`` (:func:`log_softmax_parts`), exact to float64 precision even where the model is
  so sure that ``logit[next] - logsumexp(logits)`` in float32 (or float64) rounds to 0;
* ``next_correct`` ``[batch, pos-1]``: 1.0 where ``argmax logits[:, i] == tokens[:, i+1]``;
* ``final_logits`` ``[batch, vocab]``: the logits at the last position;
* ``logits`` ``[batch, pos, vocab]``: kept only when asked for.

Every tensor comes back on the CPU as float32 (bf16/fp16 activations are upcast), batch
micro-batches concatenated in order into preallocated outputs.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from mispec.errors import UserError
from mispec.lazy import torch
from mispec.metrics.core import PSEUDO_HOOKS
from mispec.registry import did_you_mean

LAYER_FIELD = "{layer}"


def is_layer_template(template: str) -> bool:
    return LAYER_FIELD in template


def expand_hooks(templates: Sequence[str], n_layers: int) -> dict[str, list[str]]:
    """Concrete hook names per template: ``blocks.{layer}.attn.hook_pattern`` → one name per
    layer (in layer order); a template without ``{layer}`` and a pseudo hook map to themselves."""
    out: dict[str, list[str]] = {}
    for t in templates:
        if t in PSEUDO_HOOKS or not is_layer_template(t):
            out[t] = [t]
        else:
            out[t] = [t.replace(LAYER_FIELD, str(layer)) for layer in range(n_layers)]
    return out


@contextlib.contextmanager
def eval_mode(bridge: Any) -> Iterator[None]:
    """``bridge.eval()`` under ``torch.no_grad()`` for the duration, then the old mode back."""
    was_training = bool(getattr(bridge, "training", False))
    if was_training:
        bridge.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if was_training:
            bridge.train()


def check_hooks(bridge: Any, names: Sequence[str]) -> None:
    """A readable error for a hook name this model does not have (instead of a KeyError).
    A bridge's hook names are read once (``hook_dict`` walks the module tree on each call)."""
    key = tuple(names)
    try:
        checked = _CHECKED_HOOKS.setdefault(bridge, set())
    except TypeError:  # not weak-referenceable: check every time
        checked = set()
    if key in checked:
        return
    available = bridge.hook_dict
    for name in names:
        if name not in available:
            raise UserError(
                f"hook '{name}' does not exist on this model{did_you_mean(name, list(available))}"
            )
    checked.add(key)


# bridge -> the hook-name tuples already found on it (a loaded checkpoint keeps its hooks)
_CHECKED_HOOKS: weakref.WeakKeyDictionary[Any, set[tuple[str, ...]]] = weakref.WeakKeyDictionary()


def resolve_templates(
    bridge: Any, templates: Sequence[str]
) -> tuple[list[str], list[str], dict[str, list[str]], list[str]]:
    """``(real, pseudo, names, flat)``: the real templates, the pseudo hooks, each real
    template's concrete hook names, and every concrete name once (checked on ``bridge``)."""
    templates = list(dict.fromkeys(templates))
    pseudo = [t for t in templates if t in PSEUDO_HOOKS]
    real = [t for t in templates if t not in PSEUDO_HOOKS]
    names = expand_hooks(real, int(bridge.cfg.n_layers))
    flat = list(dict.fromkeys(n for t in real for n in names[t]))
    if flat:
        check_hooks(bridge, flat)
    return real, pseudo, names, flat


def micro_batching(
    bridge: Any, tokens: Any, batch_size: int | None, device: Any
) -> tuple[Any, int, int, Any]:
    """``(tokens, n, step, device)``: int64 tokens, how many prompts, prompts per
    micro-batch, and where the tokens go (the bridge's ``cfg.device`` unless given)."""
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    n = int(tokens.shape[0])
    step = int(batch_size) if batch_size else max(n, 1)
    device = device if device is not None else getattr(bridge.cfg, "device", None)
    return tokens, n, step, device


def run_forward(
    bridge: Any,
    tokens: Any,
    templates: Sequence[str],
    *,
    batch_size: int | None = None,
    device: Any = None,
) -> dict[str, Any]:
    """Run the model once per micro-batch and return ``{template: float32 CPU tensor}``.

    ``tokens``: int ``[batch, pos]``; ``batch_size``: prompts per micro-batch (None = all at
    once); ``device``: where the tokens go (None = the bridge's ``cfg.device``).
    Per-layer templates come back as ``[layer, batch, ...]``, the others as ``[batch, ...]``.
    """
    real, pseudo, names, flat = resolve_templates(bridge, templates)
    tokens, n, step, device = micro_batching(bridge, tokens, batch_size, device)
    out: dict[str, Any] = {}
    with eval_mode(bridge):
        for start in range(0, n, step):
            chunk = tokens[start : start + step]
            chunk_dev = chunk.to(device) if device is not None else chunk
            cache: dict[str, Any] = {}
            if flat:
                logits = bridge.run_with_hooks(chunk_dev, fwd_hooks=_caching_hooks(flat, cache))
            else:
                logits = bridge(chunk_dev)
            for t in real:  # copied layer by layer: no stacked copy on the device
                if is_layer_template(t):
                    for layer, name in enumerate(names[t]):
                        _place(out, t, cache[name], start, n, layer=layer, n_layers=len(names[t]))
                else:
                    _place(out, t, cache[t], start, n)
            for t, value in pseudo_hooks(logits, chunk_dev, pseudo).items():
                _place(out, t, value, start, n)
            del logits, cache
    return out


def _caching_hooks(names: Sequence[str], cache: dict[str, Any]) -> list[tuple[str, Any]]:
    """Forward hooks that keep each named activation in ``cache`` (detached, not copied) —
    what ``run_with_cache(names_filter=...)`` keeps, without its per-call scan of every hook
    point of the model (~1 ms a forward pass for a 2-layer model, a fifth of its cost)."""

    def keeper(name: str) -> Any:
        def hook(value: Any, hook: Any) -> None:
            if isinstance(value, tuple):  # a hook point that fires a tuple: its tensor
                value = value[0]
            cache[name] = value.detach()

        return hook

    return [(name, keeper(name)) for name in names]


def pseudo_hooks(logits: Any, tokens: Any, wanted: Sequence[str]) -> dict[str, Any]:
    """The requested pseudo hooks from ``logits [batch, pos, vocab]`` and ``tokens [batch, pos]``
    (on the logits' device; the caller moves them)."""
    out: dict[str, Any] = {}
    if not wanted:
        return out
    if "logits" in wanted:
        out["logits"] = logits
    if "final_logits" in wanted:
        out["final_logits"] = logits[:, -1]
    if "next_logprob" in wanted:
        out["next_logprob"] = next_token_logprob(logits, tokens)
    if "next_correct" in wanted:
        target = tokens[:, 1:].to(logits.device)
        out["next_correct"] = (logits[:, :-1].argmax(-1) == target).float()
    return out


# float64 elements of one chunk of the log-softmax (32 MiB): a big vocabulary's logits are
# never copied to float64 whole
LOG_SOFTMAX_CHUNK = 1 << 22


def log_softmax_parts(logits: Any) -> tuple[Any, Any]:
    """``(max, log_rest)`` per row of ``logits [..., vocab]`` in float64, such that
    ``log_softmax(logits) = (logits - max) - log_rest``: ``log_rest = log1p(sum over the
    entries other than the (first) largest of exp(logit - max))``.

    Written this way the log-probability of the most likely token, ``-log_rest``, keeps its
    value however small (``-4e-31`` at a logit margin of 70), where ``logit - logsumexp``
    rounds it to exactly 0 (in float32 below ~1e-7, in float64 below ~1e-16 × the logit).
    Computed in chunks of rows, each cast to float64 alone."""
    flat = logits.reshape(-1, logits.shape[-1])
    top = torch.empty(flat.shape[0], dtype=torch.float64, device=flat.device)
    rest = torch.empty_like(top)
    rows = max(1, LOG_SOFTMAX_CHUNK // max(int(flat.shape[-1]), 1))
    for start in range(0, flat.shape[0], rows):
        x = flat[start : start + rows].double()
        m, at = x.max(dim=-1, keepdim=True)
        e = torch.exp(x - m)
        e.scatter_(-1, at, 0.0)
        top[start : start + rows] = m.squeeze(-1)
        rest[start : start + rows] = torch.log1p(e.sum(-1))
    shape = tuple(logits.shape[:-1])
    return top.view(shape), rest.view(shape)


def next_token_logprob(logits: Any, tokens: Any) -> Any:
    """``[batch, pos-1]`` float64 ``log p(tokens[:, i+1] | tokens[:, :i+1])`` from ``logits
    [batch, pos, vocab]`` (see :func:`log_softmax_parts`)."""
    target = tokens[:, 1:].to(logits.device)
    chosen = logits[:, :-1].gather(-1, target.unsqueeze(-1)).squeeze(-1).double()
    top, rest = log_softmax_parts(logits[:, :-1])
    return (chosen - top) - rest


def log_softmax64(logits: Any) -> Any:
    """``log_softmax(logits)`` over the last dim in float64, exact for the most likely
    entries too (see :func:`log_softmax_parts`)."""
    top, rest = log_softmax_parts(logits)
    return (logits.double() - top[..., None]) - rest[..., None]


def _place(
    out: dict[str, Any],
    template: str,
    value: Any,
    start: int,
    n: int,
    *,
    layer: int | None = None,
    n_layers: int = 1,
) -> None:
    """Copy one micro-batch of one hook (of one layer) into ``out[template]``: a CPU float32
    tensor ``[n_layers, n, ...]`` (per-layer templates) or ``[n, ...]``, allocated on first use."""
    value = value.detach()
    if template not in out:
        if layer is None and value.shape[0] == n:  # the whole batch at once: at most a cast
            out[template] = value.to("cpu", torch.float32)
            return
        lead = (n_layers, n) if layer is not None else (n,)
        out[template] = torch.empty((*lead, *value.shape[1:]), dtype=torch.float32)
    target = out[template] if layer is None else out[template][layer]
    target[start : start + value.shape[0]].copy_(value)
