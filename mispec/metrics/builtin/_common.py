"""Helpers shared by the builtin metrics: tensors from activations, prompt extras, masks and
logit differences. Nothing here imports torch at module import time.

**Padding.** A prompt set whose prompts differ in length (text prompts) is right-padded to one
width and carries the ``attention_mask`` extra ``[batch, pos]`` (True = a real token). Padding
never enters a builtin metric: :func:`real_tokens` is that mask (None when the set has no
padding), :func:`prediction_weights` counts only the next-token predictions from a real token
to a real token, and :func:`answer_positions` defaults to each prompt's last REAL token. Right
padding leaves the activations of the real positions unchanged under causal attention, so the
real positions of the padded batch are exactly each prompt run alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from mispec.errors import MetricError, PromptError, UserError
from mispec.lazy import torch

SPLITS = ("all", "train", "test")


def tensor(x: Any) -> Any:
    """A CPU float32 torch tensor from a tensor or array (the cache hands back either)."""
    t = torch.as_tensor(np.asarray(x) if not hasattr(x, "detach") else x.detach())
    return t.to("cpu", torch.float32)


def act(acts: Mapping[str, Any], template: str) -> Any:
    """One activation (by hook template) as a CPU float32 tensor."""
    try:
        return tensor(acts[template])
    except KeyError:
        raise MetricError(f"activation '{template}' was not provided to this metric") from None


def tokens_of(prompts: Any) -> Any:
    """The prompt tokens as an int64 torch tensor ``[batch, pos]``."""
    return torch.as_tensor(np.asarray(prompts.tokens), dtype=torch.long)


def extra(prompts: Any, name: str, *, why: str) -> np.ndarray:
    """A prompt-set extra, or an error that says which metric needs it and why."""
    extras = getattr(prompts, "extras", {}) or {}
    if name not in extras:
        have = ", ".join(sorted(extras)) or "none"
        raise PromptError(f"{why} needs the prompt extra '{name}' (this prompt set has: {have})")
    return np.asarray(extras[name])


# ``mask:`` of every loss-like and comparison metric: ``auto`` (the default) is the prompt
# set's ``loss_mask`` where it has one (the predictions the task scores: a task model's
# trained positions), else every real prediction; ``none`` (or null) is every real
# prediction; any other value names a ``[batch, pos-1]`` prompt extra.
MASK_AUTO = "auto"
MASK_NONE = "none"
LOSS_MASK = "loss_mask"


def named_mask(mask: str | None) -> str | None:
    """The prompt extra a ``mask`` arg names for certain (None for ``auto`` / ``none``)."""
    return None if mask in (None, MASK_AUTO, MASK_NONE) else mask


def resolve_mask(prompts: Any, mask: str | None) -> str | None:
    """The prompt extra that ``mask`` applies to these prompts, or None (no mask: every
    prediction from a real token to a real token)."""
    if mask == MASK_AUTO:
        return LOSS_MASK if LOSS_MASK in (getattr(prompts, "extras", {}) or {}) else None
    return named_mask(mask)


def mask_label(prompts: Any, mask: str | None) -> str:
    """What ``attrs["mask"]`` of a result says about the predictions it counts."""
    used = resolve_mask(prompts, mask)
    if used is None:
        why = "the prompt set has no loss_mask" if mask == MASK_AUTO else "mask: none"
        return f"none: every real prediction ({why})"
    return f"{used} (the prompt set's, by default)" if mask == MASK_AUTO else used


def mask_extras(mask: str | None = MASK_AUTO, split: str = "all") -> tuple[str, ...]:
    """The prompt extras that ``prediction_weights`` must find with this ``mask`` and
    ``split`` (for ``@metric(extras=...)``: validate checks the prompt set has them; ``auto``
    needs none)."""
    named = named_mask(mask)
    return ((named,) if named else ()) + (("train_mask",) if split != "all" else ())


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"arg '{name}' must be one of {list(choices)}, got {value!r}")


def real_tokens(prompts: Any) -> Any:
    """``[batch, pos]`` bool torch tensor, True at real tokens, from the ``attention_mask``
    extra; None when the prompt set has none (no padding: every position is real)."""
    extras = getattr(prompts, "extras", {}) or {}
    if "attention_mask" not in extras:
        return None
    real = torch.as_tensor(np.asarray(extras["attention_mask"])).bool()
    shape = tuple(np.asarray(prompts.tokens).shape)
    if tuple(real.shape) != shape:
        raise PromptError(
            f"the 'attention_mask' extra has shape {tuple(real.shape)}; expected {shape} "
            "([batch, pos]: True at real tokens, False at padding)"
        )
    return real


def prediction_weights(prompts: Any, shape: tuple[int, int], mask: str | None, split: str) -> Any:
    """Weights ``[batch, pos-1]`` (1 = this next-token prediction counts).

    Always only the predictions from a real token to a real token (:func:`real_tokens`:
    padding never counts), further restricted by the ``mask`` extra (``[batch, pos-1]``;
    ``auto``: ``loss_mask`` where the set has one, see :func:`resolve_mask`) and a ``split``
    of the rows by the ``train_mask`` extra (``[batch]``: True for pairs in the training
    split)."""
    check_choice("split", split, SPLITS)
    mask = resolve_mask(prompts, mask)
    w = torch.ones(shape, dtype=torch.float32)
    real = real_tokens(prompts)
    if real is not None:
        if (real.shape[0], real.shape[1] - 1) != tuple(shape):
            raise PromptError(
                f"the 'attention_mask' extra has shape {tuple(real.shape)}; the predictions "
                f"have shape {tuple(shape)}"
            )
        w = w * (real[:, :-1] & real[:, 1:]).to(torch.float32)
    if mask is not None:
        m = torch.as_tensor(extra(prompts, mask, why=f"mask '{mask}'")).to(torch.float32)
        if tuple(m.shape) != tuple(shape):
            raise PromptError(
                f"mask '{mask}' has shape {tuple(m.shape)}; expected {tuple(shape)} "
                "([batch, pos-1]: one entry per next-token prediction)"
            )
        w = w * m
    if split != "all":
        train = torch.as_tensor(extra(prompts, "train_mask", why=f"split '{split}'")).bool()
        rows = train if split == "train" else ~train
        w = w * rows.to(torch.float32)[:, None]
    return w


def answer_logit_diff(logits: Any, prompts: Any, *, at: Any) -> Any:
    """Per prompt ``logit[answer] - logit[wrong_answer]`` ``[batch]``.

    ``logits``: ``[batch, vocab]`` (already at the answer position) when ``at`` is None,
    else ``[batch, pos, vocab]`` read at positions ``at`` (``[batch]`` int).
    """
    why = "a logit difference"
    answer = torch.as_tensor(extra(prompts, "answer", why=why), dtype=torch.long)
    wrong = torch.as_tensor(extra(prompts, "wrong_answer", why=why), dtype=torch.long)
    if at is not None:
        rows = torch.arange(logits.shape[0])
        logits = logits[rows, at]
    logits = logits.float()
    return logits.gather(-1, answer[:, None]).squeeze(-1) - logits.gather(
        -1, wrong[:, None]
    ).squeeze(-1)


def answer_positions(prompts: Any) -> Any:
    """``answer_pos`` extra ``[batch]`` when present, else each prompt's last real token (the
    last position when the set has no padding)."""
    n, seq = np.asarray(prompts.tokens).shape
    extras = getattr(prompts, "extras", {}) or {}
    if "answer_pos" in extras:
        pos = torch.as_tensor(np.asarray(extras["answer_pos"]), dtype=torch.long)
        return torch.where(pos < 0, pos + seq, pos)
    real = real_tokens(prompts)
    if real is not None:
        return last_real_position(real)
    return torch.full((n,), seq - 1, dtype=torch.long)


def last_real_position(real: Any) -> Any:
    """``[batch]`` index of the last True of each row of ``real [batch, pos]`` (0 if none)."""
    pos = torch.arange(real.shape[1])
    return torch.where(real, pos, 0).max(dim=1).values


def padded_at_last_position(prompts: Any) -> int:
    """How many prompts have padding at the last position (0 for a set without padding)."""
    real = real_tokens(prompts)
    return 0 if real is None else int((~real[:, -1]).sum())


def next_token_loss(logits: Any, tokens: Any, weights: Any) -> Any:
    """Weighted mean next-token cross-entropy of ``logits [batch, pos, vocab]``, in float64
    (the log-probabilities as the ``next_logprob`` pseudo hook computes them)."""
    from mispec.metrics.forward import next_token_logprob

    logp = next_token_logprob(logits, tokens.to(logits.device))
    w = weights.to(logp.device, torch.float64)
    return -(logp * w).sum() / w.sum() + 0.0  # + 0.0: never a -0.0


def weight_tensors(
    bridge: Any, keep: Callable[[str], bool] | None = None
) -> Iterator[tuple[str, Any]]:
    """The checkpoint's floating-point ``state_dict`` entries, in order, each tensor once:
    tensors that share storage (tied embeddings) are yielded under their first name.
    ``keep``: only the names it accepts (checked before the once-only rule)."""
    seen: set[tuple[int, int]] = set()
    for name, value in bridge.state_dict().items():
        if not getattr(value, "is_floating_point", lambda: False)():
            continue
        if keep is not None and not keep(name):
            continue
        ident = (value.untyped_storage().data_ptr(), value.storage_offset())
        if ident in seen:
            continue
        seen.add(ident)
        yield name, value
