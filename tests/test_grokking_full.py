"""Nanda et al.'s grokking setting, trained for real (``specs/grokking_full.yaml``: 20 000
full-batch steps at p = 113, about an hour on one CPU thread): slow, on demand
(``pytest -m slow tests/test_grokking_full.py``). It checks the paper's claims: the model
memorises, then generalises much later; a handful of key frequencies (the paper: five);
restricted loss falls before test loss; excluded loss rises during circuit formation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mispec

SPEC = Path(__file__).resolve().parent.parent / "specs" / "grokking_full.yaml"


def first_step(values: np.ndarray, steps: np.ndarray, threshold: float) -> float:
    hits = steps[values >= threshold]
    return float(hits[0]) if hits.size else float("inf")


@pytest.mark.slow
def test_the_papers_setting_groks_with_a_few_key_frequencies(tmp_path):
    run = mispec.run(SPEC, store=tmp_path / "store", out=tmp_path / "run", progress=False)
    ds = run.open()["mod113"].to_dataset().isel(seed=0)
    steps = ds.step.values
    memorised = first_step(ds.train_accuracy.values, steps, 0.95)
    generalised = first_step(ds.test_accuracy.values, steps, 0.9)
    assert generalised >= 3 * memorised  # delayed generalisation
    assert float(ds.test_accuracy.isel(step=-1)) > 0.9
    n_keys = int((ds.key_freqs.isel(step=-1) > 0).sum())
    assert 3 <= n_keys <= 8  # the paper finds five
    # restricted loss falls (below half its start) before test loss does
    r, t = ds.restricted.values, ds.test_loss.values
    assert first_step(-r, steps, -r[0] / 2) < first_step(-t, steps, -t.max() / 2)
    # excluded loss rises between memorisation and generalisation
    window = (steps >= memorised) & (steps <= generalised)
    assert ds.excluded.values[window].max() > ds.excluded.values[steps == memorised][0]
