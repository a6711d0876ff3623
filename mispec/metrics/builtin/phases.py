"""Whole-model snapshots for the PCA of training phases, and the phases of a grokking run.

**Snapshots.** ``logits`` is the model's logits at each prompt's answer position on a fixed
prompt set (``[batch, vocab]``; a finite task's whole table, say) and ``flat_weights`` all (or
some) parameters flattened into one vector (``[param]``). Fed to ``pca_over_steps`` they give
the trajectory of the model through function space or weight space (problem 5.3 of the open
problems: do phases show as turns of that trajectory?); ``pca_over_steps`` with ``fit: past``
fits each step's components on that step and the earlier ones only, so no point of the
trajectory uses information from the future (problem 5.4).

**Phases of grokking** (Nanda et al. 2023): *memorisation* (train loss falls, test loss does
not), *circuit formation* (the generalising circuit forms while train and test accuracy stay
put: restricted loss falls, excluded loss rises) and *cleanup* (weight decay removes the
memorising solution and the test accuracy jumps). ``grokking_phases`` places their ends by a
fixed, documented rule on the train and test accuracy series of one seed:

* memorisation ends at the first checkpoint whose train accuracy is ``>= memorised``
  (default 0.95);
* circuit formation ends (cleanup starts) at the first later checkpoint whose test accuracy
  is ``>= cleanup_start`` (default 0.5: halfway from chance to perfect, where the test
  accuracy's jump is under way);
* cleanup ends at the first later checkpoint whose test accuracy is ``>= grokked`` (default
  0.9).

A phase that never ends within the series is NaN (and so is every later one). The rule reads
accuracies only: on a log schedule the ends are checkpoint steps, as exact as the schedule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mispec.errors import UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import act, answer_positions, weight_tensors
from mispec.metrics.core import metric


@metric(dims=("batch", "vocab"), hooks=("logits",), units="logits")
def logits(acts: Any, prompts: Any) -> Any:
    """The logits at each prompt's answer position (its ``answer_pos`` extra, else its last
    real token), ``[batch, vocab]`` — the model's function on a fixed prompt set. Every
    one-value-per-prompt extra (``answer``, ``train_mask`` …) rides along as a coordinate on
    ``batch``, so whoever reads the result knows each row's answer and split."""
    return answer_logits(acts, prompts)


def answer_logits(acts: Any, prompts: Any) -> Any:
    """The ``logits`` metric's result (see there)."""
    full = act(acts, "logits")  # [batch, pos, vocab]
    pos = answer_positions(prompts)
    values = full[torch.arange(full.shape[0]), pos].double().numpy()
    n = values.shape[0]
    coords = {
        name: ("batch", np.asarray(v))
        for name, v in (getattr(prompts, "extras", {}) or {}).items()
        if np.asarray(v).shape == (n,) and np.asarray(v).dtype.kind in "biuf"
    }
    return xr.DataArray(values, dims=("batch", "vocab"), coords=coords)


@metric(dims=("param",), units="weight")
def flat_weights(bridge: Any, include: list[str] | None = None) -> Any:
    """Every floating-point parameter of the checkpoint (``state_dict`` order; tensors that
    share storage once), flattened and concatenated into one ``param`` vector; ``include``:
    only the parameters whose name starts with one of these prefixes (e.g. ``[embed,
    blocks.0.mlp]``). ``attrs``: the parameter names taken (``parameters``)."""
    parts, names = [], []
    keep = None if include is None else (lambda name: any(name.startswith(p) for p in include))
    for name, value in weight_tensors(bridge, keep):
        names.append(name)
        parts.append(value.detach().to("cpu", torch.float64).reshape(-1).numpy())
    if not parts:
        raise UserError(f"flat_weights: no parameter name starts with any of {include}")
    return xr.DataArray(np.concatenate(parts), dims=("param",), attrs={"parameters": names})


PHASES = ("memorisation", "circuit_formation", "cleanup")


def _first_at_or_after(steps: np.ndarray, ok: np.ndarray, after: float) -> float:
    hits = steps[ok & (steps >= after)]
    return float(hits[0]) if hits.size else float("nan")


@metric(
    dims=("phase",),
    inputs=("train_accuracy", "test_accuracy"),
    reduces="step",
    units="step",
)
def grokking_phases(
    train_accuracy: Any,
    test_accuracy: Any,
    memorised: float = 0.95,
    cleanup_start: float = 0.5,
    grokked: float = 0.9,
) -> Any:
    """The step at which each phase of grokking ends (``phase``: ``memorisation``,
    ``circuit_formation``, ``cleanup``), by the threshold rule of the module docstring on the
    train and test accuracy series; NaN for a phase that does not end."""
    for name, v in (
        ("memorised", memorised),
        ("cleanup_start", cleanup_start),
        ("grokked", grokked),
    ):
        if not 0 < v <= 1:
            raise UserError(f"grokking_phases: {name} must be in (0, 1], got {v}")
    if cleanup_start > grokked:
        raise UserError("grokking_phases: cleanup_start must be <= grokked")
    out = []
    for series in (train_accuracy, test_accuracy):
        if set(series.dims) != {"step"}:
            raise UserError(
                f"grokking_phases reads one accuracy per step (dims (step,)), got {series.dims}"
            )
    train = train_accuracy.sortby("step")
    test = test_accuracy.sortby("step").reindex(step=train["step"])
    steps = np.asarray(train["step"].values, dtype=float)
    tr, te = np.asarray(train.values, dtype=float), np.asarray(test.values, dtype=float)
    end_mem = _first_at_or_after(steps, tr >= memorised, -np.inf)
    end_circuit = _first_at_or_after(steps, te >= cleanup_start, end_mem)
    end_cleanup = _first_at_or_after(steps, te >= grokked, end_circuit)
    out = [end_mem, end_circuit, end_cleanup]
    return xr.DataArray(
        np.array(out, dtype=float),
        dims=("phase",),
        coords={"phase": np.array(PHASES, dtype=object)},
        attrs={"units": "step"},
    )
