"""Extract, once, the reference data of the grokking paper's saved runs into ``tests/data``.

Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability", ship
their saved runs as pickles in ``saved_runs/`` of the paper's public repository
(mechanistic-interpretability-grokking/progress-measures-paper). This script is the ONLY
place that unpickles them (``torch.load(weights_only=False)``); mispec and its tests read
what it writes: JSON and safetensors.

Usage::

    python scripts/extract_grokking_reference.py SAVED_RUNS_DIR OUT_DIR

with ``SAVED_RUNS_DIR`` holding ``mod_addition_frac_train_sweep.pth`` and
``wd_10-1_mod_addition_loss_curve.pth``; ``OUT_DIR`` is normally
``tests/data/grokking_reference``. It writes:

* ``frac_sweep.json``: the ten training fractions, each one's first epoch whose test loss
  is below 1, its number of epochs, and a log-subsampled (train, test) loss curve.
* ``wd_10-1/``: the grokked model of ``wd_10-1_mod_addition_loss_curve.pth`` as a ``path:``
  folder (``model_<updates>.safetensors`` with TransformerLens ``HookedTransformer`` names,
  float32 as trained, and a TL-style ``config.json``), and ``wd_10-1_curve.json``: its
  config, optimizer hyper-parameters and subsampled losses.

The conversion of the paper's layout (its ``Transformer`` of ``transformers.py``):
``W_E [d_model, vocab]`` → ``[vocab, d_model]``; ``W_Q/K/V [head, d_head, d_model]`` →
``[head, d_model, d_head]``; ``W_O [d_model, head*d_head]`` → ``[head, d_head, d_model]``;
``W_in [d_mlp, d_model]`` and ``W_out [d_model, d_mlp]`` transposed; ``W_U`` as is. The paper
has no attention or unembedding biases: they are written as zeros. Its ``W_pos`` has
``n_ctx = 3`` rows (input ``[a, b, =]``); mispec's ``modular_addition`` prompts are
``[a, b, =, c]`` scored at ``=`` (position 2), so a fourth row of zeros is appended: under
causal attention position 3 never reaches position 2, whose logits are unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

FRACTIONS_FILE = "mod_addition_frac_train_sweep.pth"
GROKKED_FILE = "wd_10-1_mod_addition_loss_curve.pth"
CURVE_POINTS = 100
SOURCE = (
    "saved_runs/{} of the paper's public repository "
    "(mechanistic-interpretability-grokking/progress-measures-paper)"
)


def log_epochs(n: int, points: int = CURVE_POINTS, keep: tuple[int, ...] = ()) -> list[int]:
    """About ``points`` epochs spread evenly in log scale over ``0 … n-1``, plus ``keep``."""
    grid = np.unique(np.round(np.geomspace(1, n - 1, points - 1)).astype(int))
    extra = [e for e in keep if 0 <= e < n]
    return sorted({0, n - 1, *grid.tolist(), *extra})


def first_below(losses: np.ndarray, threshold: float = 1.0) -> int | None:
    """Index of the first loss below ``threshold`` (``None`` if none is)."""
    below = np.flatnonzero(losses < threshold)
    return int(below[0]) if below.size else None


def frac_sweep(path: Path) -> dict[str, Any]:
    """The sweep file is ``[fractions, losses]`` with ``losses`` interleaved per fraction:
    ``[train_0, test_0, train_1, test_1, …]``, one value per epoch (list index = epoch)."""
    fractions, losses = torch.load(path, map_location="cpu", weights_only=False)
    assert len(losses) == 2 * len(fractions), "expected a (train, test) curve per fraction"
    runs = []
    for i, frac in enumerate(fractions):
        train = np.asarray(losses[2 * i], dtype=np.float64)
        test = np.asarray(losses[2 * i + 1], dtype=np.float64)
        assert train.shape == test.shape
        grok = first_below(test)
        keep = () if grok is None else (grok - 1, grok)
        epochs = log_epochs(len(test), keep=keep)
        runs.append(
            {
                "train_frac": float(frac),
                "epochs": len(test),
                "test_loss_below_1_epoch": grok,
                "curve": {
                    "epoch": epochs,
                    "train_loss": train[epochs].tolist(),
                    "test_loss": test[epochs].tolist(),
                },
            }
        )
    return {
        "source": SOURCE.format(FRACTIONS_FILE),
        "layout": "per fraction: list index = epoch = updates applied before the loss was taken",
        "runs": runs,
    }


def to_hooked_transformer(sd: dict[str, torch.Tensor], n_ctx: int) -> dict[str, torch.Tensor]:
    """The paper's state dict → TransformerLens ``HookedTransformer`` names and shapes."""
    n_heads, d_head, d_model = sd["blocks.0.attn.W_Q"].shape
    d_vocab = sd["embed.W_E"].shape[1]
    w_pos = sd["pos_embed.W_pos"]
    pad = torch.zeros(n_ctx - w_pos.shape[0], d_model, dtype=w_pos.dtype)
    out = {
        "embed.W_E": sd["embed.W_E"].T,
        "pos_embed.W_pos": torch.cat([w_pos, pad]),
        "unembed.W_U": sd["unembed.W_U"],
        "unembed.b_U": torch.zeros(d_vocab),
    }
    for layer in range(sum(k.endswith("attn.W_Q") for k in sd)):
        b = f"blocks.{layer}"
        for name in ("W_Q", "W_K", "W_V"):
            out[f"{b}.attn.{name}"] = sd[f"{b}.attn.{name}"].transpose(1, 2)
            out[f"{b}.attn.b_{name[-1]}"] = torch.zeros(n_heads, d_head)
        out[f"{b}.attn.W_O"] = sd[f"{b}.attn.W_O"].T.reshape(n_heads, d_head, d_model)
        out[f"{b}.attn.b_O"] = torch.zeros(d_model)
        out[f"{b}.mlp.W_in"] = sd[f"{b}.mlp.W_in"].T
        out[f"{b}.mlp.b_in"] = sd[f"{b}.mlp.b_in"]
        out[f"{b}.mlp.W_out"] = sd[f"{b}.mlp.W_out"].T
        out[f"{b}.mlp.b_out"] = sd[f"{b}.mlp.b_out"]
    return {k: v.detach().to(torch.float32).contiguous().clone() for k, v in out.items()}


def grokked_model(path: Path, out_dir: Path) -> dict[str, Any]:
    run = torch.load(path, map_location="cpu", weights_only=False)
    sd = run["model"]
    n_heads, d_head, d_model = sd["blocks.0.attn.W_Q"].shape
    n_ctx = 4  # mispec's [a, b, =, c]; see the module docstring
    config = {
        "d_model": int(d_model),
        "d_head": int(d_head),
        "n_heads": int(n_heads),
        "n_layers": 1,
        "d_mlp": int(sd["blocks.0.mlp.W_in"].shape[0]),
        "d_vocab": int(sd["embed.W_E"].shape[1]),
        "n_ctx": n_ctx,
        "act_fn": "relu",
        "normalization_type": None,
        "attn_only": False,
        "positional_embedding_type": "standard",
    }
    updates = len(run["train_losses"])  # losses are taken before each update
    folder = out_dir / "wd_10-1"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(to_hooked_transformer(sd, n_ctx), str(folder / f"model_{updates}.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=1) + "\n")

    train = np.asarray(run["train_losses"], dtype=np.float64)
    test = np.asarray(run["test_losses"], dtype=np.float64)  # every 10th epoch
    test_grok = first_below(test)
    test_idx = log_epochs(len(test), keep=() if test_grok is None else (test_grok - 1, test_grok))
    optimizer = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in run["optimizer"]["param_groups"][0].items()
        if k != "params"
    }
    return {
        "source": SOURCE.format(GROKKED_FILE),
        "config": {k: v for k, v in run["config"].items() if isinstance(v, int | float | str)},
        "optimizer_param_groups_0": optimizer,
        "scheduler_last_epoch": int(run["scheduler"]["last_epoch"]),
        "epoch": int(run["epoch"]),
        "updates": updates,
        "final_train_loss": float(run["train_loss"].detach()),
        "final_test_loss": float(run["test_loss"].detach()),
        "loss_dtype": str(run["train_loss"].dtype).removeprefix("torch."),
        "test_loss_below_1_epoch": None if test_grok is None else 10 * test_grok,
        "train_curve": {
            "epoch": (idx := log_epochs(len(train))),
            "loss": train[idx].tolist(),
        },
        "test_curve": {
            "epoch": [10 * i for i in test_idx],
            "loss": test[test_idx].tolist(),
        },
        "notes": (
            "config says weight_decay 1 but the optimizer state (and the file name) say 0.1; "
            "test losses were taken every 10 epochs; model_<updates>.safetensors holds the "
            "weights after `updates` updates, in HookedTransformer names (zero attention and "
            "unembedding biases, W_pos padded with a zero row to n_ctx 4)"
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("saved_runs", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    sweep = frac_sweep(args.saved_runs / FRACTIONS_FILE)
    (args.out_dir / "frac_sweep.json").write_text(json.dumps(sweep, indent=1) + "\n")
    curve = grokked_model(args.saved_runs / GROKKED_FILE, args.out_dir)
    (args.out_dir / "wd_10-1_curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    for run in sweep["runs"]:
        print(
            f"train_frac {run['train_frac']}: test loss < 1 at epoch {run['test_loss_below_1_epoch']}"
        )
    print(
        f"wd_10-1: test loss < 1 at epoch {curve['test_loss_below_1_epoch']}, "
        f"{curve['updates']} updates, loss dtype {curve['loss_dtype']}"
    )
    assert all(math.isfinite(x) for x in curve["train_curve"]["loss"])


if __name__ == "__main__":
    main()
