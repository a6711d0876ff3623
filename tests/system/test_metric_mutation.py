"""Issue 14 item 2: a metric that modifies its activations in place fails with a MetricError
naming it, and no cell computed from the changed tensor, nor the changed activation, is kept:
a later run without it gives the values of a store that never saw it."""

from __future__ import annotations

import numpy as np
import pytest

import mispec
from mispec.errors import MetricError
from tests.conftest import TOY_SPEC

PLUGIN = """
import numpy as np

from mispec.metrics.core import metric

P = "blocks.{layer}.attn.hook_pattern"


@metric(dims=("layer", "head"), hooks=(P,))
def zeroes(acts, prompts):
    acts[P].mul_(0)
    return np.zeros((2, 2))


@metric(dims=None, inputs=("x",))
def scribbles(x):
    x.values[...] = 0
    return x
"""

HEAD, TAIL = TOY_SPEC.split("metrics:\n")


def project(root, metrics: str):
    (root / ".mispec").mkdir()
    (root / "mutating_plugin.py").write_text(PLUGIN)
    spec = root / "spec.yaml"
    spec.write_text(HEAD + "metrics:\n" + metrics + TAIL)
    return spec


@pytest.fixture(scope="module")
def clean_values(tmp_path_factory):
    spec = project(tmp_path_factory.mktemp("clean"), "")
    return mispec.run(spec, progress=False).open()["toy"].to_dataset()


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ('  mut: {fn: "mutating_plugin:zeroes", prompts: rep}\n', "modified its input activation"),
        ('  mut: {fn: "mutating_plugin:scribbles", inputs: {x: per_token_loss}}\n', "read-only"),
    ],
)
def test_a_metric_that_modifies_its_input_poisons_nothing(tmp_path, clean_values, plugin, message):
    spec = project(tmp_path, plugin)
    with pytest.raises(MetricError, match=rf"cell:mut/.*'(zeroes|scribbles)'.*{message}"):
        mispec.run(spec, progress=False)
    spec.write_text(HEAD + "metrics:\n" + TAIL)  # the same spec without the plugin
    ds = mispec.run(spec, progress=False).open()["toy"].to_dataset()
    for name in ("loss", "per_token_loss", "induction", "icl", "transition"):
        np.testing.assert_array_equal(ds[name].values, clean_values[name].values, err_msg=name)
