"""A port of the grokking paper's model and training loop, written for mispec's tests.

Nanda et al. (2023), "Progress measures for grokking via mechanistic interpretability"; the
paper's public repository (mechanistic-interpretability-grokking/progress-measures-paper)
holds its code in ``transformers.py``. This module is written here from reading that code
(not copied), keeping its structure, so that mispec's training can be compared with it
update by update:

* **Model** (``Transformer``): a 1-layer transformer without LayerNorm, input ``[a, b, =]``
  (``=`` is token ``p``, ``n_ctx = 3``), logits at the last position. Weights are stored in
  the paper's layout: ``W_E [d_model, vocab]``, ``W_Q/K/V [head, d_head, d_model]``,
  ``W_O [d_model, head*d_head]``, ``W_in [d_mlp, d_model]``, ``W_out [d_model, d_mlp]``,
  ``W_U [d_model, vocab]``. No attention biases, no unembedding bias; the MLP has biases.
  Every weight is drawn ``N(0, 1/d_model)`` but ``W_U``, ``N(0, 1/d_vocab)``, in the order
  of module creation (embed, pos_embed, W_K, W_Q, W_V, W_O, W_in, W_out, unembed).
* **Split** (``train_test_pairs``): every ``(a, b, p)`` in row-major order, shuffled by
  Python's ``random.seed(seed); random.shuffle``; the first ``int(frac * p²)`` train.
* **Training** (``train``): full batch, AdamW(lr, weight_decay, betas (0.9, 0.98)) with
  ``LambdaLR(lambda step: min(step / 10, 1))`` stepped once per update, so update 0 runs at
  lr 0 (it only feeds Adam's moments, and weight decay is ``lr * wd = 0``); the loss is the
  cross-entropy of the last position's logits over all ``p + 1`` tokens, in float64 (the
  saved runs' losses are float64 tensors; the public ``helpers.py`` casts to float32 in a
  function whose comment says float64 — ``loss_dtype`` picks).

``PortOptions`` switches single choices off, to measure each one's effect against mispec.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PaperConfig:
    p: int = 113
    d_model: int = 128
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 3
    lr: float = 1e-3
    weight_decay: float = 1.0
    frac_train: float = 0.3
    seed: int = 0

    @property
    def d_vocab(self) -> int:
        return self.p + 1

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class PortOptions:
    """Choices of the paper that a comparison may switch (defaults: the paper's)."""

    warmup_update0_at_zero: bool = True  # LambdaLR min(u/10, 1); False: lr (u+1)/10
    loss_dtype: torch.dtype = torch.float64
    loss_over_numbers_only: bool = False  # the paper: softmax over all p + 1 tokens
    extra: dict = field(default_factory=dict)


class Transformer(nn.Module):
    """The paper's 1-layer, no-LayerNorm transformer (see the module docstring)."""

    def __init__(self, cfg: PaperConfig):
        super().__init__()
        d, h, dh, m, v = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab
        s = 1 / np.sqrt(d)
        self.cfg = cfg
        self.W_E = nn.Parameter(torch.randn(d, v) * s)
        self.W_pos = nn.Parameter(torch.randn(cfg.n_ctx, d) * s)
        self.W_K = nn.Parameter(torch.randn(h, dh, d) * s)
        self.W_Q = nn.Parameter(torch.randn(h, dh, d) * s)
        self.W_V = nn.Parameter(torch.randn(h, dh, d) * s)
        self.W_O = nn.Parameter(torch.randn(d, h * dh) * s)
        self.W_in = nn.Parameter(torch.randn(m, d) * s)
        self.b_in = nn.Parameter(torch.zeros(m))
        self.W_out = nn.Parameter(torch.randn(d, m) * s)
        self.b_out = nn.Parameter(torch.zeros(d))
        self.W_U = nn.Parameter(torch.randn(d, v) / np.sqrt(v))

    def parameter_order(self) -> list[str]:
        """Names in the order the paper's ``model.parameters()`` lists them (AdamW's)."""
        return [name for name, _ in self.named_parameters()]

    def forward(self, tokens: torch.Tensor, *, return_post: bool = False):
        n = tokens.shape[-1]
        x = self.W_E[:, tokens].permute(1, 2, 0) + self.W_pos[:n]  # [batch, pos, d]
        q = torch.einsum("hed,bpd->bhpe", self.W_Q, x)
        k = torch.einsum("hed,bpd->bhpe", self.W_K, x)
        v = torch.einsum("hed,bpd->bhpe", self.W_V, x)
        scores = torch.einsum("bhqe,bhke->bhqk", q, k) / np.sqrt(self.cfg.d_head)
        causal = torch.ones(n, n, dtype=torch.bool, device=tokens.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
        z = torch.einsum("bhqk,bhke->bqhe", scores.softmax(-1), v).flatten(2)
        x = x + z @ self.W_O.T
        post = F.relu(x @ self.W_in.T + self.b_in)
        x = x + post @ self.W_out.T + self.b_out
        logits = x @ self.W_U
        return (logits, post) if return_post else logits


def all_pairs(p: int) -> list[tuple[int, int, int]]:
    """``(a, b, =)`` for every pair, row-major (row ``a * p + b``)."""
    return [(a, b, p) for a in range(p) for b in range(p)]


def train_test_pairs(cfg: PaperConfig) -> tuple[list[tuple[int, int, int]], list]:
    """The paper's split: Python's ``random`` shuffle of the table from ``seed``."""
    pairs = all_pairs(cfg.p)
    random.seed(cfg.seed)
    random.shuffle(pairs)
    cut = int(cfg.frac_train * len(pairs))
    return pairs[:cut], pairs[cut:]


def paper_loss(
    model: Transformer, data: torch.Tensor, p: int, options: PortOptions = PortOptions()
) -> torch.Tensor:
    """Mean cross-entropy of the last position's logits against ``(a + b) mod p``."""
    logits = model(data)[:, -1]
    if options.loss_over_numbers_only:
        logits = logits[:, :p]
    labels = (data[:, 0] + data[:, 1]) % p
    logprobs = logits.to(options.loss_dtype).log_softmax(-1)
    return -logprobs.gather(-1, labels[:, None]).mean()


def lr_factor(update: int, options: PortOptions = PortOptions()) -> float:
    if options.warmup_update0_at_zero:
        return min(update / 10, 1.0)
    return min((update + 1) / 10, 1.0)


def make_optimizer(model: Transformer, cfg: PaperConfig, options: PortOptions = PortOptions()):
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98)
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda u: lr_factor(u, options))
    return optimizer, scheduler


def train(
    model: Transformer,
    cfg: PaperConfig,
    train_data: torch.Tensor,
    updates: int,
    options: PortOptions = PortOptions(),
) -> list[float]:
    """``updates`` full-batch updates; the training loss before each (as the paper logs)."""
    optimizer, scheduler = make_optimizer(model, cfg, options)
    losses = []
    for _ in range(updates):
        loss = paper_loss(model, train_data, cfg.p, options)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return losses


def from_hooked_transformer(sd: dict[str, torch.Tensor], cfg: PaperConfig) -> Transformer:
    """The port's model holding a TransformerLens ``HookedTransformer`` state dict's weights
    (zero attention biases assumed; ``W_pos`` rows beyond ``n_ctx`` dropped)."""
    h, dh, d = cfg.n_heads, cfg.d_head, cfg.d_model
    model = Transformer(cfg)
    weights = {
        "W_E": sd["embed.W_E"].T,
        "W_pos": sd["pos_embed.W_pos"][: cfg.n_ctx],
        "W_K": sd["blocks.0.attn.W_K"].transpose(1, 2),
        "W_Q": sd["blocks.0.attn.W_Q"].transpose(1, 2),
        "W_V": sd["blocks.0.attn.W_V"].transpose(1, 2),
        "W_O": sd["blocks.0.attn.W_O"].reshape(h * dh, d).T,
        "W_in": sd["blocks.0.mlp.W_in"].T,
        "b_in": sd["blocks.0.mlp.b_in"],
        "W_out": sd["blocks.0.mlp.W_out"].T,
        "b_out": sd["blocks.0.mlp.b_out"],
        "W_U": sd["unembed.W_U"],
    }
    with torch.no_grad():
        for name, value in weights.items():
            getattr(model, name).copy_(value)
    return model


def to_bridge_weights(model: Transformer, n_ctx: int = 4) -> dict[str, torch.Tensor]:
    """The port's weights under mispec's bridge keys (``nn.Linear`` layout, heads split from
    the output features as ``(head, d_head)``), ``W_pos`` padded with zero rows to ``n_ctx``
    (mispec's ``[a, b, =, c]``) and zero attention and unembedding biases."""
    cfg, d = model.cfg, model.cfg.d_model
    zeros = torch.zeros
    w = {k: v.detach().clone() for k, v in model.named_parameters()}
    out = {
        "embed.weight": w["W_E"].T,
        "pos_embed.weight": torch.cat([w["W_pos"], zeros(n_ctx - cfg.n_ctx, d)]),
        "blocks.0.attn.o.weight": w["W_O"],
        "blocks.0.attn.o.bias": zeros(d),
        "blocks.0.mlp.in.weight": w["W_in"],
        "blocks.0.mlp.in.bias": w["b_in"],
        "blocks.0.mlp.out.weight": w["W_out"],
        "blocks.0.mlp.out.bias": w["b_out"],
        "unembed.weight": w["W_U"].T,
        "unembed.bias": zeros(cfg.d_vocab),
    }
    for name in ("q", "k", "v"):
        out[f"blocks.0.attn.{name}.weight"] = w[f"W_{name.upper()}"].reshape(-1, d)
        out[f"blocks.0.attn.{name}.bias"] = zeros(cfg.n_heads * cfg.d_head)
    return {k: v.contiguous() for k, v in out.items()}
