"""Headline lines about comparison results (``pairs:``): how far apart the sides are at the
last step, and which heads match across seeds and how well."""

from __future__ import annotations

from typing import Any

import numpy as np

# per-checkpoint values that comparisons read: large arrays, no headline of their own
COMPARISON_INPUTS = frozenset(
    {"next_token_logprobs", "token_logprobs", "activations", "attention_patterns", "parameters"}
)


def is_comparison(var: Any) -> bool:
    return "seed_b" in var.dims or "step_b" in var.dims or "head_b" in var.dims


def _picks(steps: Any, n: int = 5) -> list[int]:
    """Up to ``n`` steps spread over the checkpoints (by index: log schedules stay spread)."""
    return sorted({int(steps[i]) for i in np.linspace(0, len(steps) - 1, n).round().astype(int)})


def comparison_lines(model: str, name: str, var: Any) -> list[str]:
    """Lines for one comparison variable of ``model``'s dataset."""
    if var.attrs.get("metric_fn") == "head_matching" or "head_b" in var.dims:
        return head_matching_lines(model, name, var)
    if "step_b" in var.dims and "step" in var.dims:
        return _to_step_lines(model, name, var)
    if "seed_b" not in var.dims or "step" not in var.dims:
        return []
    last = var.isel(step=-1)
    extra = [d for d in last.dims if d not in ("seed", "seed_b")]
    if extra:
        last = last.mean(extra, skipna=True)
    parts = []
    for a in var.seed.values:
        for b in var.seed_b.values:
            value = float(last.sel(seed=a, seed_b=b))
            if np.isfinite(value):
                parts.append(f"seeds {int(a)}-{int(b)} {value:.4g}")
    how = f" (mean over {', '.join(extra)})" if extra else ""
    step = int(var.step.values[-1])
    return [f"{model}: {name} at step {step}{how}: " + ", ".join(parts)] if parts else []


def head_matching_lines(model: str, name: str, var: Any) -> list[str]:
    """Per seed pair at the last step: each layer's assignment (side a's head → side b's)
    with the matched overlap, against the mean overlap of unmatched pairs; then the matched
    overlap (the last step's assignment) over a few steps."""
    from mispec.metrics.builtin.head_identity import match_heads

    if not {"seed", "seed_b", "step"} <= set(var.dims):
        return []
    lines = []
    last = var.isel(step=-1)
    matched = match_heads(last)
    steps = var.step.values
    picks = _picks(steps)
    for a in var.seed.values:
        for b in var.seed_b.values:
            sim = last.sel(seed=a, seed_b=b)
            if np.isnan(sim.values).all():
                continue
            heads = matched.head_b.sel(seed=a, seed_b=b)
            score = matched.similarity.sel(seed=a, seed_b=b)
            layers = []
            for layer in sim.layer.values:
                square = sim.sel(layer=layer).values
                cols = heads.sel(layer=layer).values
                off = square.copy()
                off[np.arange(len(cols)), cols] = np.nan
                pairs = ", ".join(
                    f"{h}→{int(c)} {float(score.sel(layer=layer, head=h)):.2f}"
                    for h, c in zip(sim["head"].values, cols, strict=True)
                )
                layers.append(f"L{int(layer)}: {pairs} (unmatched mean {np.nanmean(off):.2f})")
            lines.append(
                f"{model}: {name} seed {int(a)} → seed {int(b)} at step {int(steps[-1])} "
                f"(head → head_b, attention overlap): " + "; ".join(layers)
            )
            over = []
            for step in picks:
                at = var.sel(seed=a, seed_b=b, step=step)
                values = []
                for layer in at.layer.values:
                    cols = heads.sel(layer=layer).values
                    square = at.sel(layer=layer).values
                    values.append(float(np.nanmean(square[np.arange(len(cols)), cols])))
                over.append(f"step {step} " + "/".join(f"{v:.2f}" for v in values))
            lines.append(
                f"{model}: {name} seed {int(a)} → seed {int(b)}, overlap of those matched heads "
                "per layer over steps: " + ", ".join(over)
            )
    return lines


def _to_step_lines(model: str, name: str, var: Any) -> list[str]:
    """Each checkpoint against one step (``pairs: {steps: ...}``): a few steps per seed."""
    extra = [d for d in var.dims if d not in ("seed", "step", "step_b")]
    values = var.mean(extra, skipna=True) if extra else var
    how = f" (mean over {', '.join(extra)})" if extra else ""
    lines = []
    for b in var.step_b.values:
        for seed in var.seed.values:
            parts = [
                f"step {s} {float(values.sel(seed=seed, step=s, step_b=b)):.4g}"
                for s in _picks(var.step.values)
            ]
            lines.append(
                f"{model} seed {int(seed)}: {name} against step {int(b)}{how}: " + ", ".join(parts)
            )
    return lines
