"""The ``llc`` metric against devinterp called directly on the same model and data, its
determinism, and its errors (devinterp missing: exit 2 naming the extra, at validate)."""

from __future__ import annotations

import functools
import importlib.util
import random

import numpy as np
import pytest
import torch

from mispec.errors import MissingDependencyError, SpecError, UserError
from mispec.metrics.builtin.llc import _counted_rows, llc
from mispec.tasks import make_task
from mispec.validation.load import load_spec

P = 7
SGLD = dict(lr=1e-3, n_beta=20.0, localization=10.0, num_chains=2, num_draws=12, batch_size=8,
            num_init_loss_batches=4, init_seed=5)  # fmt: skip


CFG = dict(
    d_model=16, d_head=4, n_layers=1, n_ctx=4, n_heads=2, d_vocab=P + 1, d_mlp=24,
    normalization_type=None, act_fn="relu", seed=3,
)  # fmt: skip


def fresh_copy(state):
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    model = TransformerBridge.boot_native(TransformerBridgeConfig(**CFG))
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(autouse=True)
def one_thread():
    """SGLD steps on a toy model are thread-overhead bound: one thread is ~7x faster here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def bridge():
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    from mispec.models.native import freeze

    return freeze(TransformerBridge.boot_native(TransformerBridgeConfig(**CFG)))


def table():
    return make_task("modular_addition", {"p": P, "train_frac": 0.6}).prompt_set(None, 0)


def direct_devinterp(ps):
    """devinterp's ``llc`` on an independent copy of the model and the training rows, with a
    loss written from scratch: the cross-entropy of the answer (position 3, predicted at 2),
    the same at every token position of its row."""
    from devinterp.slt.llc import llc as devinterp_llc

    copy = fresh_copy(bridge().state_dict())

    class Answer(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def __deepcopy__(self, memo):
            fresh = fresh_copy(self.model.state_dict())
            for q in fresh.parameters():
                q.requires_grad_(True)
            return Answer(fresh)

        def train(self, mode=True):
            return self

        def forward(self, ids):
            logits = self.model(ids)[:, 2]
            ce = torch.nn.functional.cross_entropy(logits, ids[:, 3], reduction="none")
            return ce[:, None].expand(-1, ids.shape[1] - 1)

    for q in copy.parameters():
        q.requires_grad_(True)
    tokens = torch.as_tensor(np.asarray(ps.tokens))
    rows = np.flatnonzero(np.asarray(ps.extras["train_mask"]))
    data = [{"input_ids": tokens[i]} for i in rows]
    kw = dict(SGLD)
    out = devinterp_llc(Answer(copy), data, {}, loss_fn=lambda m, ids: m(ids), device="cpu", **kw)
    return out


def test_llc_equals_devinterp_called_directly_and_is_deterministic():
    ps = table()
    before = {k: v.clone() for k, v in bridge().state_dict().items()}
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    first = llc(bridge(), ps, **SGLD)
    # the caller's random state is its own again, the bridge untouched
    after_rng = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    assert after_rng == (torch.rand(1).item(), np.random.rand(), random.random())
    assert all(torch.equal(before[k], v) for k, v in bridge().state_dict().items())
    assert not any(p.requires_grad for p in bridge().parameters())

    again = llc(bridge(), ps, **SGLD)
    assert float(again) == float(first)
    direct = direct_devinterp(ps)
    assert float(first) == pytest.approx(float(direct["llc_mean"]), rel=1e-4)
    assert first.attrs["init_loss"] == pytest.approx(float(direct["init_loss"]), rel=1e-5)
    assert first.attrs["std"] == pytest.approx(float(direct["llc_std"]), rel=1e-3, abs=1e-6)
    assert np.isfinite(first.attrs["std"]) and first.attrs["std"] >= 0
    # another seed samples other chains
    assert float(llc(bridge(), ps, **{**SGLD, "init_seed": 6})) != float(first)


def test_llc_refuses_too_few_rows_and_a_missing_devinterp(monkeypatch):
    ps = table()
    train = np.asarray(ps.extras["train_mask"])
    assert _counted_rows(ps, "loss_mask", "train") == int(train.sum()) == round(0.6 * P * P)
    assert _counted_rows(ps, "loss_mask", "test") == int((~train).sum())
    with pytest.raises(UserError, match="fewer than one batch"):
        llc(bridge(), ps, **{**SGLD, "batch_size": 64})
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "devinterp" else real(n, *a)
    )
    with pytest.raises(MissingDependencyError, match=r"mispec\[llc\]") as err:
        llc(bridge(), ps, **SGLD)
    assert err.value.exit_code == 2


SPEC = """\
mispec: 1
name: llc-check
models:
  m:
    train:
      task: modular_addition
      task_args: {p: 7, train_frac: 0.6}
      arch: {n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, d_mlp: 16, normalization: null}
      steps: 4
      batch_size: null
    seeds: [0]
    checkpoints: {schedule: linear, count: 2}
prompts:
  table: {generator: modular_addition, args: {p: 7, train_frac: 0.6}}
metrics:
  lam: {fn: llc, prompts: table, args: {batch_size: 8}}
"""


def test_validate_names_the_extra_when_devinterp_is_missing(tmp_path, monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text(SPEC)
    load_spec(path)  # valid with devinterp installed
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "devinterp" else real(n, *a)
    )
    with pytest.raises(SpecError, match=r"s\.yaml:16:\d+: metrics\.lam: .*'llc' extra") as err:
        load_spec(path)
    assert err.value.exit_code == 2
