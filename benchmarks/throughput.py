"""Toy-model training throughput: mispec's ``ensure_trained`` against minimal hand-written
torch loops on the same configuration (2-layer attn-only, d_model 64, 4 heads, vocab 64,
half_len 24, batch 64, AdamW lr 1e-3 wd 0.01, full next-token loss).

* ``minimal (same module)``: the loop a researcher writes around the very module mispec
  trains (TransformerLens's ``NativeModel``, built by ``mispec.models.native.plain_model``):
  ``torch.randint`` batches, forward, cross-entropy, backward, AdamW step; nothing saved.
  Building the model is inside the timing, as ``ensure_trained``'s own set-up is.
* ``minimal (hand-written model)``: the same loop around a 30-line attention-only
  transformer written in plain torch (information only: it measures TransformerLens's module,
  not mispec).
* ``mispec, 1 save``: ``ensure_trained`` to the last step, saving only that step (the
  trainer's own loop: deterministic per-step numpy batches, LR schedule, masked loss).
* ``mispec, save every 10``: the same with a checkpoint (weights + optimizer state,
  safetensors with checksums) every 10 steps, as the scale (a) study needs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import Timing, fresh_dir, timed
from benchmarks.fixtures import TOY_TRAIN


def train_spec(steps: int) -> Any:
    from mispec.spec.train import TrainSpec

    return TrainSpec.model_validate(dict(TOY_TRAIN, steps=steps))


def mispec_loop(steps: int, save_every: int | None, store: Path, seed: int = 0) -> Timing:
    from mispec.models.training import ensure_trained

    fresh_dir(store)
    want = list(range(0, steps + 1, save_every)) if save_every else [steps]
    with timed() as t:
        report = ensure_trained("bench", train_spec(steps), seed, want, store, progress=False)
    t.extra.update(steps=report.steps_trained, saves=len(report.saved))
    return t


def _batch(gen: torch.Generator, batch: int, vocab: int, half: int) -> torch.Tensor:
    x = torch.randint(1, vocab, (batch, half), generator=gen)
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), x, x], dim=1)


def _loop(make_model: Any, steps: int) -> Timing:
    """Build the model (timed, as ``ensure_trained``'s own set-up is), then train."""
    args = TOY_TRAIN["task_args"]
    gen = torch.Generator().manual_seed(0)
    with timed() as t:
        model = make_model().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        for _ in range(steps):
            tokens = _batch(gen, TOY_TRAIN["batch_size"], args["vocab"], args["half_len"])
            logits = model(tokens)
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    t.extra.update(steps=steps, final_loss=loss.item())
    return t


def minimal_same_module(steps: int, seed: int = 0) -> Timing:
    from mispec.models.native import plain_model
    from mispec.models.runs import native_config

    kwargs = native_config(train_spec(steps), seed)
    return _loop(lambda: plain_model(kwargs), steps)


class AttnOnly(torch.nn.Module):
    """A hand-written 2-layer attention-only transformer with pre-LayerNorm."""

    def __init__(self, vocab: int, n_ctx: int, d_model: int, n_heads: int, n_layers: int):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d_model)
        self.pos = torch.nn.Parameter(torch.randn(n_ctx, d_model) * 0.02)
        self.ln = torch.nn.ModuleList(torch.nn.LayerNorm(d_model) for _ in range(n_layers))
        self.qkv = torch.nn.ModuleList(
            torch.nn.Linear(d_model, 3 * d_model) for _ in range(n_layers)
        )
        self.out = torch.nn.ModuleList(torch.nn.Linear(d_model, d_model) for _ in range(n_layers))
        self.ln_f = torch.nn.LayerNorm(d_model)
        self.unembed = torch.nn.Linear(d_model, vocab)
        self.n_heads = n_heads

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n = tokens.shape
        x = self.embed(tokens) + self.pos[:n]
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        for ln, qkv, out in zip(self.ln, self.qkv, self.out, strict=True):
            q, k, v = qkv(ln(x)).view(b, n, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
            pattern = scores.masked_fill(~mask, float("-inf")).softmax(-1)
            x = x + out((pattern @ v).transpose(1, 2).reshape(b, n, -1))
        return self.unembed(self.ln_f(x))


def minimal_hand_written(steps: int) -> Timing:
    torch.manual_seed(0)
    a, arch = TOY_TRAIN["task_args"], TOY_TRAIN["arch"]
    n_ctx = 1 + 2 * a["half_len"]
    return _loop(lambda: AttnOnly(a["vocab"], n_ctx, arch["d_model"], arch["n_heads"], 2), steps)


def measure(steps: int, repeats: int, work: Path) -> dict[str, dict[str, Any]]:
    """Steps per second of each variant (best of ``repeats``, interleaved)."""
    runs: dict[str, list[Timing]] = {}
    variants = {
        "minimal loop (same TL NativeModel)": lambda: minimal_same_module(steps),
        "minimal loop (hand-written model)": lambda: minimal_hand_written(steps),
        "mispec ensure_trained, 1 save": lambda: mispec_loop(steps, None, work / "train-a"),
        "mispec ensure_trained, save every 10": lambda: mispec_loop(steps, 10, work / "train-b"),
    }
    minimal_same_module(5)  # warm-up (kernels, imports)
    mispec_loop(5, None, work / "train-warm")
    for _ in range(repeats):
        for name, fn in variants.items():
            runs.setdefault(name, []).append(fn())
    out = {}
    for name, ts in runs.items():  # the best run: interference only ever slows a loop down
        rates = sorted(steps / t.wall for t in ts)
        cpu_rates = sorted(steps / t.cpu for t in ts if t.cpu > 0)
        out[name] = {
            "steps_per_s": rates[-1],
            "steps_per_cpu_s": cpu_rates[-1] if cpu_rates else None,
            "all_steps_per_s": rates,
            "extra": ts[0].extra,
        }
    return out
