"""mispec's progress measures on the grokking paper's own grokked model (issue 28).

``tests/data/grokking_reference/`` is extracted once from the paper's saved runs by
``scripts/extract_grokking_reference.py`` (the public repository of Nanda et al. 2023,
mechanistic-interpretability-grokking/progress-measures-paper; the project never unpickles).
``wd_10-1/`` holds the final weights of ``wd_10-1_mod_addition_loss_curve.pth`` (p = 113,
weight decay 0.1, seed 1, the paper's split) as a ``path:`` folder. Read through a spec,
the model must answer all 113² pairs and show the key frequencies the paper's analysis gives
for that file, and its logits must be those of a forward pass written from the paper's code
(``tests/helpers/grokking_paper.py``) on the paper's input ``[a, b, =]``.

mispec's ``modular_addition`` prompts are ``[a, b, =, c]`` with ``=`` the token ``p = 113``
(the paper's id) and are scored at ``=`` (position 2): with causal attention, the same
prediction as the paper's last position of ``[a, b, =]``. The converted config has
``n_ctx = 4`` (a zero fourth ``W_pos`` row) so the 4-token prompts fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mispec
from mispec.models import checkpoints
from mispec.sources import LocalFolderSource
from mispec.sources.local_folder import LocalFolderModelSpec
from tests.helpers.grokking_paper import PaperConfig, all_pairs, from_hooked_transformer

DATA = Path(__file__).parents[1] / "data" / "grokking_reference"
FOLDER = DATA / "wd_10-1"
UPDATES = 107791
P = 113
PAPER_KEY_FREQUENCIES = [6, 23, 37, 39, 41]

SPEC = """\
mispec: 1
name: paper-grokked
models:
  paper:
    path: {folder}
prompts:
  table: {{generator: modular_addition, args: {{p: 113, train_frac: 0.3}}}}
metrics:
  accuracy:  {{fn: accuracy, prompts: table, args: {{mask: loss_mask}}}}
  key_freqs: {{fn: key_frequencies, prompts: table}}
  logits:    {{fn: logits, prompts: table}}
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper_grokked")
    (folder / "spec.yaml").write_text(SPEC.format(folder=FOLDER.resolve()))
    return mispec.run(folder / "spec.yaml", progress=False).open()["paper"].to_dataset()


@pytest.fixture(scope="module")
def port_logits() -> np.ndarray:
    """The paper's forward pass (the port) on ``[a, b, =]``, last position, float64."""
    sd = checkpoints.read_tensors(FOLDER / f"model_{UPDATES}.safetensors")[0]
    model = from_hooked_transformer(sd, PaperConfig(p=P)).double()
    with torch.no_grad():
        return model(torch.tensor(all_pairs(P)))[:, -1].numpy()


def test_the_reference_data_is_what_the_paper_reports():
    sweep = json.loads((DATA / "frac_sweep.json").read_text())
    runs = {r["train_frac"]: r["test_loss_below_1_epoch"] for r in sweep["runs"]}
    assert runs == {
        0.95: 123, 0.9: 156, 0.8: 177, 0.7: 129, 0.6: 270,
        0.5: 744, 0.4: 2615, 0.3: 7583, 0.28: 14465, 0.25: 21419,
    }  # fmt: skip
    curve = json.loads((DATA / "wd_10-1_curve.json").read_text())
    assert curve["updates"] == UPDATES and curve["test_loss_below_1_epoch"] == 90890
    assert curve["optimizer_param_groups_0"]["weight_decay"] == 0.1


def test_the_paper_model_answers_every_pair(results):
    assert float(results.accuracy.squeeze()) == 1.0


def test_the_paper_model_has_the_papers_key_frequencies(results):
    counts = results.key_freqs.squeeze()
    assert [int(k) for k in counts["freq"].values[counts.values > 0]] == PAPER_KEY_FREQUENCIES


def test_the_logits_are_the_papers_forward_pass(results, port_logits):
    logits = results.logits.squeeze().transpose("batch", "vocab").values
    assert logits.shape == (P * P, P + 1)
    np.testing.assert_allclose(logits, port_logits, rtol=0, atol=1e-4)
    assert (
        port_logits[:, :P].argmax(1) == (np.arange(P * P) // P + np.arange(P * P) % P) % P
    ).all()


def test_the_loaded_model_on_the_papers_three_token_input(tmp_path, port_logits):
    """The model a ``path:`` spec loads, fed the paper's ``[a, b, =]`` directly."""
    source = LocalFolderSource("paper", LocalFolderModelSpec(path=str(FOLDER)), tmp_path)
    model = source.open(0, tmp_path).load(UPDATES)
    with torch.no_grad():
        logits = model(torch.tensor(all_pairs(P)))[:, -1].double().numpy()
    np.testing.assert_allclose(logits, port_logits, rtol=0, atol=1e-4)
