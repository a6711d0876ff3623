"""The local learning coefficient (LLC) of a checkpoint, estimated by ``devinterp`` (optional
extra ``llc``: ``pip install 'mispec[llc]'``).

The LLC ``λ(w*)`` measures how degenerate the loss landscape is around the weights ``w*``
(Lau et al. 2023, "Quantifying degeneracy in singular models via the learning coefficient"):
low for a simple, flat solution, high for a complex, sharp one. Developmental
interpretability reads its curve over training beside the mechanistic measures — in
grokking it rises while the model memorises and falls in cleanup. The estimate is
``λ̂ = nβ (E_w[L_n(w)] − L_n(w*))``, the expectation over a local tempered posterior
sampled by SGLD from ``w*``.

**What is sampled.** ``llc`` hands devinterp 2's ``devinterp.slt.llc.llc`` (no SGLD in mispec)
a private copy of the checkpoint and the training data of the prompt set it is wired to: the
rows of ``split`` (default ``train``: the ``train_mask`` rows, the training split of a finite
task such as ``modular_addition``; ``all`` for a task without a split) and, per row, the
predictions that ``mask`` keeps (default ``loss_mask``: the ones the task trains on), padding
never. The loss devinterp samples on each batch is exactly the training loss of that batch —
the mean cross-entropy over its counted predictions, pooled by prediction (each row carries
its index as an extra last token, which the loss strips to find the row's weights; the
per-token values devinterp stores are scaled so that their mean is that pooled loss). The
cross-entropy is computed in ``loss_dtype`` (``float64`` as a ``loss_dtype: float64``
training does). The copy is a fresh native bridge with the checkpoint's weights in eval mode
(a deep copy of a live bridge is not independent: its capture hooks still point at the
original), so only models mispec can boot natively are supported (``train:`` models,
``path:`` state-dict folders, legacy TL hub models).

**Settings.** The SGLD settings are devinterp's ``sample()`` arguments with its defaults
(4 chains of 200 draws, batches of 32, no burn-in, no localization, no weight decay, init
seed 100); ``lr`` (no default in devinterp's ``llc``) defaults to its ``SGLD`` optimizer's
0.01 and ``n_beta`` to ``devinterp.utils.default_nbeta(batch_size)`` = ``b / log b``. These
defaults are not tuned for any model: check a setting by the per-chain loss traces (stable,
not diverging) before trusting a curve (devinterp's guidance). A chain that diverges (a NaN
or infinite loss) makes the value NaN, with a warning.

**Determinism.** Every chain is seeded (``init_seed + chain``) and the batches are drawn by
seeded generators, so a checkpoint's value is the same on every run on the same machine.
The caller's global random state (torch, numpy, ``random``), which devinterp reseeds, is
restored afterwards.

The result is devinterp's ``llc_mean`` (over chains); ``<name>__std`` (its spread over
chains) and ``<name>__init_loss`` (devinterp's estimate of the loss at ``w*``, over
``num_init_loss_batches`` batches) come with it as variables of the results.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import math
import random
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mispec.errors import MissingDependencyError, UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import SPLITS, check_choice, mask_extras, prediction_weights
from mispec.metrics.core import metric

LOSS_DTYPES = ("float32", "float64")


def _require_devinterp() -> None:
    if importlib.util.find_spec("devinterp") is None:
        raise MissingDependencyError("the 'llc' metric", "llc", "pip install 'devinterp>=2,<3'")


def _llc_extras(mask: str | None = "loss_mask", split: str = "train") -> tuple[str, ...]:
    return mask_extras(mask, split)


def _check_llc(prompts: Any, **args: Any) -> None:
    """At validate: devinterp is installed, the settings are in range, and the counted
    training rows fill at least one batch."""
    _require_devinterp()
    check_choice("loss_dtype", args.get("loss_dtype", "float32"), LOSS_DTYPES)
    for name in ("num_chains", "num_draws", "batch_size", "num_steps_bw_draws"):
        if name in args and int(args[name]) < 1:
            raise UserError(f"llc: '{name}' must be at least 1, got {args[name]}")
    for name in ("lr", "localization", "llc_weight_decay", "num_burnin_steps"):
        if name in args and args[name] < 0:
            raise UserError(f"llc: '{name}' must not be negative, got {args[name]}")
    rows = _counted_rows(prompts, args.get("mask"), args["split"])
    if rows < int(args.get("batch_size", 32)):
        raise UserError(
            f"llc: only {rows} prompts have counted predictions (split '{args['split']}'), "
            f"fewer than one batch (batch_size {args.get('batch_size', 32)})"
        )


def _counted_rows(prompts: Any, mask: str | None, split: str) -> int:
    """How many prompts have a prediction that ``prediction_weights`` counts (numpy only:
    validate does not import torch)."""
    check_choice("split", split, SPLITS)
    extras = getattr(prompts, "extras", {}) or {}
    n, t = np.asarray(prompts.tokens).shape
    w = np.ones((n, t - 1), dtype=bool)
    if "attention_mask" in extras:
        real = np.asarray(extras["attention_mask"]).astype(bool)
        w &= real[:, :-1] & real[:, 1:]
    if mask is not None and mask in extras:
        w &= np.asarray(extras[mask]).astype(bool).reshape(n, t - 1)
    if split != "all" and "train_mask" in extras:
        train = np.asarray(extras["train_mask"]).astype(bool)
        w &= (train if split == "train" else ~train)[:, None]
    return int(w.any(axis=1).sum())


@metric(dims=(), units="LLC", extras=_llc_extras, check_prompts=_check_llc)
def llc(
    bridge: Any,
    prompts: Any,
    mask: str | None = "loss_mask",
    split: Literal["all", "train", "test"] = "train",
    loss_dtype: Literal["float32", "float64"] = "float32",
    lr: float = 0.01,
    n_beta: float | None = None,
    localization: float = 0.0,
    llc_weight_decay: float = 0.0,
    num_chains: int = 4,
    num_draws: int = 200,
    num_burnin_steps: int = 0,
    num_steps_bw_draws: int = 1,
    batch_size: int = 32,
    num_init_loss_batches: int = 32,
    init_seed: int = 100,
) -> Any:
    """Local learning coefficient of the checkpoint on its training data, estimated by
    devinterp's SGLD sampler (``llc_mean`` over chains; needs the ``llc`` extra).

    ``mask`` / ``split`` choose the predictions the loss counts (default: the task's
    ``loss_mask`` on the ``train_mask`` rows); the other args are devinterp's ``sample()``
    settings and defaults (``n_beta``: ``batch_size / log(batch_size)``; ``init_seed`` seeds
    the chains). See the module docstring.

    Args:
        mask: which predictions the sampled loss counts: a ``[batch, pos-1]`` prompt extra (default
            ``loss_mask``, which the prompt set must then have: the ones the task trains on),
            ``auto`` the ``loss_mask`` where there is one, ``none`` every real prediction.
        split: the rows sampled: ``train`` (default) / ``test`` the ``train_mask`` rows / the
            others; ``all`` every row (a task without a split).
        loss_dtype: dtype the cross-entropy is computed in: ``float32`` or ``float64`` (as a
            ``loss_dtype: float64`` training does).
        lr: SGLD step size (default 0.01, devinterp's ``SGLD`` default); lower it when chains
            diverge.
        n_beta: the inverse temperature ``nβ`` of the local posterior (``null``: ``batch_size /
            log(batch_size)``, devinterp's ``default_nbeta``).
        localization: strength ``γ`` of the pull towards the checkpoint's weights (default 0: none);
            raise it when chains wander off.
        llc_weight_decay: weight decay of the SGLD sampler (default 0).
        num_chains: independent SGLD chains, each seeded ``init_seed + chain`` (default 4); the
            result is their mean, ``<name>__std`` their spread.
        num_draws: loss draws per chain that enter the estimate (default 200).
        num_burnin_steps: SGLD steps per chain discarded before the first draw (default 0).
        num_steps_bw_draws: SGLD steps between two draws (default 1).
        batch_size: rows per SGLD batch (default 32); at least this many rows must have counted
            predictions.
        num_init_loss_batches: batches over which the loss at the checkpoint (``<name>__init_loss``)
            is estimated (default 32).
        init_seed: seed of the first chain; chain ``c`` uses ``init_seed + c`` (default 100).
    """
    _require_devinterp()
    check_choice("loss_dtype", loss_dtype, LOSS_DTYPES)
    from devinterp.slt.llc import llc as devinterp_llc
    from devinterp.utils import default_nbeta

    tokens = torch.as_tensor(np.asarray(prompts.tokens), dtype=torch.long)
    weights = prediction_weights(prompts, (tokens.shape[0], tokens.shape[1] - 1), mask, split)
    rows = torch.nonzero(weights.sum(1) > 0).flatten()
    if len(rows) < batch_size:
        raise UserError(
            f"llc: only {len(rows)} prompts have counted predictions (split '{split}'), "
            f"fewer than one batch (batch_size {batch_size})"
        )
    device = next(bridge.parameters()).device
    # each row carries its index as an extra last token: the loss reads that row's weights
    data = [{"input_ids": torch.cat([tokens[i], i.reshape(1)])} for i in rows]
    model = _training_loss_class()(bridge, weights, loss_dtype)
    nbeta = float(default_nbeta(batch_size)) if n_beta is None else float(n_beta)
    with (
        _isolated_random_state(),
        _quiet_progress(),
        torch.enable_grad(),
        tempfile.TemporaryDirectory(prefix="mispec-llc-") as tmp,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        out = devinterp_llc(
            model,
            data,  # a list of rows is a map-style dataset
            {},
            lr=lr,
            n_beta=nbeta,
            loss_fn=_training_loss,
            num_chains=num_chains,
            num_draws=num_draws,
            num_burnin_steps=num_burnin_steps,
            num_steps_bw_draws=num_steps_bw_draws,
            batch_size=batch_size,
            num_init_loss_batches=num_init_loss_batches,
            init_seed=init_seed,
            localization=localization,
            llc_weight_decay=llc_weight_decay,
            device=str(device),
            output_path=Path(tmp) / "samples.zarr",
        )
        value, std, init = (float(out[k]) for k in ("llc_mean", "llc_std", "init_loss"))
    failed = [str(w.message) for w in caught if "Chain failed" in str(w.message)]
    if failed or not math.isfinite(value):
        warnings.warn(
            f"llc: SGLD did not stay finite ({'; '.join(failed) or 'non-finite estimate'}); "
            "the value is NaN — lower lr or raise localization",
            stacklevel=2,
        )
        value = std = float("nan")
    return xr.DataArray(value, attrs={"std": std, "init_loss": init})


def _training_loss(model: Any, input_ids: Any) -> Any:
    """devinterp's ``loss_fn``: the per-token loss ``[batch, seq-1]`` of ``input_ids``."""
    return model(input_ids)


@functools.cache
def _training_loss_class() -> type:
    """``_TrainingLoss``, defined on first use (torch is imported lazily)."""

    class _TrainingLoss(torch.nn.Module):  # type: ignore[misc,name-defined]
        """The model devinterp samples: a private native bridge with the checkpoint's
        weights (gradients on, eval mode), whose forward maps ``[batch, n + 1]`` (tokens, then
        the row index) to a per-token loss ``[batch, n]`` whose mean is the batch's training
        loss. devinterp deep-copies it once per chain; a copy boots a fresh bridge again."""

        def __init__(self, bridge: Any, weights: Any, loss_dtype: str):
            super().__init__()
            self.model = _fresh_bridge(bridge)
            self.register_buffer("weights", weights.to(next(self.model.parameters()).device))
            self.loss_dtype = loss_dtype

        def __deepcopy__(self, memo: dict[int, Any]) -> Any:
            return type(self)(self.model, self.weights, self.loss_dtype)

        def train(self, mode: bool = True) -> Any:
            super().train(mode)
            self.model.eval()  # the loss is the deterministic (eval-mode) loss
            return self

        def forward(self, input_ids: Any) -> Any:
            tokens, index = input_ids[:, :-1], input_ids[:, -1]
            dtype = torch.float64 if self.loss_dtype == "float64" else torch.float32
            logits = self.model(tokens)[:, :-1].to(dtype)
            nll = -(logits.log_softmax(-1).gather(-1, tokens[:, 1:, None]).squeeze(-1))
            w = self.weights[index].to(dtype)  # [batch, n-1]
            per_token = torch.nn.functional.pad(nll * w, (0, 1))  # [batch, n]
            return (per_token * (per_token.numel() / w.sum())).float()

    return _TrainingLoss


def _fresh_bridge(bridge: Any) -> Any:
    """A new native bridge with ``bridge``'s weights and nothing shared with it."""
    from transformer_lens.model_bridge import TransformerBridge

    if getattr(bridge.cfg, "architecture", None) != "TransformerLensNative":
        raise UserError(
            "llc samples a private copy of the model and supports natively booted models "
            "(train:, path: state dicts, legacy TransformerLens hub models); this model is "
            f"{getattr(bridge.cfg, 'architecture', type(bridge).__name__)}"
        )
    p = next(bridge.parameters())
    fresh = TransformerBridge.boot_native(  # type: ignore[attr-defined]  # attached at import
        copy.deepcopy(bridge.cfg), device=str(p.device), dtype=p.dtype
    )
    fresh.load_state_dict(bridge.state_dict(), strict=True)
    fresh.eval()
    for q in fresh.parameters():
        q.requires_grad_(True)
    return fresh


@contextlib.contextmanager
def _isolated_random_state() -> Iterator[None]:
    """devinterp reseeds torch, numpy and ``random`` globally; give the caller its own back."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


_QUIET = threading.local()


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence devinterp's per-chain tqdm bars in this thread (they would interleave with
    mispec's progress display); devinterp's other callers keep theirs."""
    from devinterp.slt import sampler

    if not getattr(sampler.trange, "_mispec_quiet", False):
        loud = sampler.trange

        def trange(*a: Any, **k: Any) -> Any:
            if getattr(_QUIET, "on", False):
                k["disable"] = True
            return loud(*a, **k)

        trange._mispec_quiet = True  # type: ignore[attr-defined]
        sampler.trange = trange
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = False
