"""mispec's training against a port of the grokking paper's, update by update (issue 28).

The port (``tests/helpers/grokking_paper.py``, written from the paper's ``transformers.py``)
and mispec's training of ``specs/grokking_full.yaml``'s ``train:`` block start from the SAME
weights (the port's initialisation, seed 0, under mispec's bridge keys) and train on the SAME
pairs (the paper's split: ``random.seed(0)`` shuffle, the first ``int(0.3 · 113²)`` = 3 830)
for 200 full-batch updates; the test prints each update's loss difference.

Slow (``make test-slow``): two 200-update runs at p = 113 on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mispec.models import training
from mispec.models.init_weights import Start
from mispec.models.training import seat_for, train_alone
from mispec.models.weight_targets import select
from mispec.validation.load import load_spec
from tests.helpers.grokking_paper import (
    PaperConfig,
    PortOptions,
    Transformer,
    to_bridge_weights,
    train,
    train_test_pairs,
)

SPEC = Path(__file__).resolve().parents[2] / "specs" / "grokking_full.yaml"
UPDATES = 200
P = 113


def spec_train():
    return load_spec(SPEC).spec.models["mod113"].train


def paper_start(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(PaperConfig(p=P, seed=seed))


def mispec_losses(
    weights: dict[str, torch.Tensor], rows: np.ndarray | None, updates: int, store: Path
) -> list[float]:
    """The training losses of ``updates`` updates of mispec's loop on the spec's ``train:``
    block (its optimizer, warmup, loss dtype and frozen attention biases), starting from
    ``weights`` and training on the table rows ``rows`` (``None``: mispec's own split)."""
    train_spec = spec_train()
    kwargs = training.native_config(train_spec, 0)
    hold, problems = select([], list(train_spec.freeze.params), kwargs)
    assert not problems
    recorded: list[float] = []
    original = training.masked_loss

    def recording_loss(*args, **kw):
        loss = original(*args, **kw)
        recorded.append(loss.item())
        return loss

    seat = seat_for(
        "mod113", train_spec, 0, [0, updates], store,
        start=lambda fresh: Start({k: v.clone() for k, v in weights.items()}), hold=hold,
    )  # fmt: skip
    assert seat is not None
    if rows is not None:
        seat.task.__dict__["train_indices"] = np.sort(rows)
    training.masked_loss = recording_loss
    try:
        train_alone(seat, progress=False)
    finally:
        training.masked_loss = original
    return recorded


def paper_rows(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """The paper's training pairs as ``[a, b, =]`` tokens (its order) and as table rows."""
    pairs, _ = train_test_pairs(PaperConfig(p=P, seed=seed))
    data = torch.tensor(pairs)
    return data, (data[:, 0] * P + data[:, 1]).numpy()


def show(name: str, port: list[float], ours: list[float]) -> np.ndarray:
    """Print and return the per-update |port − mispec| loss difference."""
    diff = np.abs(np.asarray(port) - np.asarray(ours))
    print(f"--- {name}: max |loss difference| {diff.max():.3e} at update {diff.argmax()}")
    for u in range(len(diff)):
        print(f"update {u:3d}: port {port[u]:.12f} mispec {ours[u]:.12f} |diff| {diff[u]:.3e}")
    return diff


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[float]]:
    """Per-update training losses of mispec and of the port (each from the port's seed-0
    initialisation on the paper's seed-0 pairs): the paper's warmup, mispec's warmup, and
    mispec's warmup with the training pairs in reverse order (only the float32 summation
    order changes: the rounding floor of any implementation)."""
    data, rows = paper_rows()
    out = {"mispec": mispec_losses(to_bridge_weights(paper_start()), rows, UPDATES,
                                   tmp_path_factory.mktemp("store"))}  # fmt: skip
    shifted = PortOptions(warmup_update0_at_zero=False)
    for name, options, pairs in [
        ("paper", PortOptions(), data),
        ("mispec_warmup", shifted, data),
        ("mispec_warmup_reversed", shifted, data.flip(0)),
    ]:
        model = paper_start()
        out[name] = train(model, model.cfg, pairs, UPDATES, options)
    return out


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason=(
        "two causes, measured: (1) warmup — the paper's LambdaLR min(u/10, 1) runs update 0 "
        "at lr 0 and stays one update behind mispec's (u+1)/10: |diff| 3.4e-3 at update 1, "
        "max 9.2e-2 (update 100); (2) float32 rounding, amplified by training: with mispec's "
        "warmup on the port the losses agree within 2e-9 for 10 updates, then drift past "
        "1e-6 at update 18 to max 9.2e-3 — as far as the port drifts from itself with the "
        "training pairs summed in reverse order (1.2e-2)"
    ),
)
def test_mispec_trains_as_the_paper_for_200_updates(runs):
    diff = show("paper's warmup", runs["paper"], runs["mispec"])
    assert diff.max() < 1e-6


@pytest.mark.slow
def test_with_mispecs_warmup_the_losses_agree_until_float32_rounding_takes_over(runs):
    """The port switched to mispec's warmup ((u+1)/10) is mispec's loop: equal within float32
    rounding for the first updates, and after them no farther from mispec than the port is
    from itself when only the order of summation changes."""
    diff = show("mispec's warmup", runs["mispec_warmup"], runs["mispec"])
    floor = show(
        "port vs port, pairs reversed", runs["mispec_warmup"], runs["mispec_warmup_reversed"]
    )
    assert diff[:11].max() < 1e-8
    assert floor[:11].max() < 1e-8
    assert diff.max() < 5 * floor.max()


@pytest.mark.slow
def test_the_papers_update_0_changes_nothing_but_adams_moments(runs):
    """Update 0 at lr 0: the paper's loss before update 1 is its loss before update 0."""
    paper, ours = runs["paper"], runs["mispec"]
    assert abs(paper[0] - ours[0]) < 1e-8  # same weights, same pairs, same loss
    assert paper[1] == paper[0]
    assert ours[1] < ours[0] - 1e-3
