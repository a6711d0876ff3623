"""``train.loss_dtype``: the training cross-entropy in float64 (Nanda et al.'s grokking code
computes it so, to avoid the loss spikes of float32 rounding), without changing the training
identity of a spec that does not set it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mispec.models.runs import training_identity
from mispec.models.training import masked_loss
from mispec.validation.load import load_spec

REPO = Path(__file__).resolve().parents[2]


def test_float64_loss_resolves_what_float32_rounds_away():
    logits = torch.tensor([[[0.0, 30.0, 0.0], [0.0, 0.0, 0.0]]])  # predict token 1 at pos 0
    tokens = torch.tensor([[0, 1]])
    mask = torch.tensor([[True]])
    exact = float(np.log1p(2 * np.exp(-30.0)))  # -log softmax(30 | 0, 30, 0)
    assert masked_loss(logits, tokens, mask, "float64").item() == pytest.approx(exact, rel=1e-9)
    assert masked_loss(logits, tokens, mask).item() == 0.0  # float32: 1.9e-13 rounds to 0


def test_loss_dtype_keeps_the_identity_of_specs_without_it():
    spec = load_spec(REPO / "specs/induction_heads.yaml").spec
    train = spec.models["toy2l"].train
    # the default study's identity, as main computed it before the key existed
    assert training_identity(train, 0) == "878f2542c59d45348bf5"
    explicit = train.model_copy(update={"loss_dtype": "float32"})
    assert training_identity(explicit, 0) == "878f2542c59d45348bf5"
    wide = train.model_copy(update={"loss_dtype": "float64"})
    assert training_identity(wide, 0) != "878f2542c59d45348bf5"
