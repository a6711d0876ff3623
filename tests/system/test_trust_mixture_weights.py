"""Mixture weights are finite and >= 0, and normalise without overflow (issue 26, item 8)."""

from __future__ import annotations

import numpy as np
import pytest

from mispec.tasks import make_task
from mispec.tasks.mixture import Mixture
from tests.reliability_helpers import cli, new_project

MIXED = """\
mispec: 1
name: mixed
models:
  both:
    train:
      mixture:
        tasks:
          add: {{task: modular_addition, task_args: {{p: 7}}, weight: {a}}}
          sub: {{task: modular_subtraction, task_args: {{p: 7, eq_token: 8}}, weight: {b}}}
      arch: {{n_layers: 1, n_heads: 1, d_model: 8, d_head: 8, d_mlp: 16, d_vocab: 9}}
      steps: 2
      batch_size: 8
      optimizer: {{name: adamw, lr: 1.0e-3}}
    checkpoints: all
prompts:
  add: {{generator: modular_addition, args: {{p: 7}}}}
metrics:
  loss: {{fn: loss, prompts: add}}
"""


def _parts() -> dict:
    return {
        "add": make_task("modular_addition", {"p": 7}),
        "sub": make_task("modular_subtraction", {"p": 7, "eq_token": 8}),
    }


@pytest.mark.parametrize("big", [1e308, np.finfo(np.float64).max])
def test_weights_near_the_float_range_mix_half_and_half(big):
    """``{a: 1e308, b: 1e308}``: the sum overflows, yet the batch is split 50/50 (was 0/100)."""
    mix = Mixture(_parts(), {"add": big, "sub": big})
    np.testing.assert_array_equal(mix.weights_at(0), [0.5, 0.5])
    rows = np.concatenate([mix.batch(seed, 0, 64).extras["task"] for seed in range(20)])
    share = float((rows == 0).mean())  # 1280 multinomial draws at p = 0.5
    assert 0.45 < share < 0.55


def test_tiny_weights_keep_their_ratio():
    mix = Mixture(_parts(), {"add": 5e-324, "sub": 1.5e-323})
    np.testing.assert_allclose(mix.weights_at(0), [0.25, 0.75])


@pytest.mark.parametrize(
    ("a", "b", "line"),
    [(".inf", "1", 8), ("1", ".nan", 9), ("-1", "1", 8), ("1", "-.inf", 9), ("0", "0", 0)],
)
def test_bad_weights_are_refused_at_validate_with_their_place(tmp_path, a, b, line):
    spec = new_project(tmp_path, MIXED.format(a=a, b=b))
    out = cli("validate", str(spec), cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "internal error" not in out.stderr.lower()
    if line:
        assert f"spec.yaml:{line}:" in out.stderr, out.stderr
        assert "weight" in out.stderr
    else:
        assert "weight 0" in out.stderr, out.stderr
    assert not (tmp_path / "runs").exists()
