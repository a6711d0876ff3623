"""The plan carries what running it needs (issue 27, item 2): a cell or reduction its metric's
bound args and the hooks it reads, a group and a forward pass their model's dtype. Executors
read those, never the spec: a checkpoint group and a reduction run with a spec that refuses
every look at its metrics and models give the very cells of a normal run. And ``refine:``
brackets its transition through the metric's own record (``@metric(bracket=...)``), so a
plugin's transition metric refines as ``crossing_step`` does, with its args' defaults from
its function, not from the refinement code.
"""

from __future__ import annotations

import ast
import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import mispec
from mispec.spec.selectors import log_schedule

SPEC = """\
mispec: 1
name: arch-plan
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 30
      batch_size: 16
    seeds: [0]
    checkpoints: {steps: [0, 10, 20, 30]}
prompts:
  rep: {generator: repeated_tokens, args: {n: 8, vocab: 16, half_len: 6}, seed: 1}
cache:
  next_logprob: float16
metrics:
  loss: {fn: loss, prompts: rep}
  induction: {fn: induction_score, prompts: rep}
  top: {fn: reduce, inputs: {x: induction}, args: {over: [head], how: max}}
  crossing: {fn: crossing_step, inputs: {series: loss}, args: {level: 3.0, min_size: 0}}
"""


class _Refused:
    """A spec section that no executor may read: every look at it fails the test."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"an executor read spec.{self._name} ({attr})")

    def __getitem__(self, key: str) -> Any:
        raise AssertionError(f"an executor read spec.{self._name}[{key!r}]")

    def __contains__(self, key: object) -> bool:
        raise AssertionError(f"an executor read spec.{self._name}")


def test_groups_and_reductions_read_only_the_plan(tmp_path):
    from mispec.execute.context import RunContext
    from mispec.execute.work.group import run_group, run_reduction
    from mispec.planning.nodes import CellNode, GroupNode, ReductionNode
    from mispec.store.store import Store

    (tmp_path / ".mispec").mkdir()
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    mispec.run(spec, progress=False)  # trains, and computes every cell (the reference)
    planned = mispec.plan(spec)
    plan, store = planned.plan, Store(planned.store_dir)
    results = plan.nodes(CellNode) + plan.nodes(ReductionNode)
    reference = {n.key: store.cells.read(n.key) for n in results}
    assert all(v is not None for v in reference.values())
    shutil.rmtree(planned.store_dir / "cells")  # keep the trained checkpoints only
    shutil.rmtree(planned.store_dir / "activations.zarr")

    ctx = RunContext(plan, tmp_path, store, device="cpu")
    ctx.handle("toy", 0)  # the source opens with the spec's model entry (not an executor)
    refusing = plan.spec.model_copy(
        update={"metrics": _Refused("metrics"), "models": _Refused("models")}
    )
    ctx.plan = dataclasses.replace(plan, spec=refusing)
    for node in plan.work_order():
        if isinstance(node, GroupNode):
            run_group(ctx, node)
        elif isinstance(node, ReductionNode):
            run_reduction(ctx, node)
    assert ctx.counters.cells_computed == len(plan.nodes(CellNode)) == 12
    assert ctx.counters.reductions_computed == 1 and ctx.counters.activations_written > 0
    for node in results:
        xr.testing.assert_identical(store.cells.read(node.key), reference[node.key])
    # the carried args are the bound ones: the spec's over the function's defaults
    (crossing,) = plan.nodes(ReductionNode)
    assert dict(crossing.args) == {"level": 3.0, "min_size": 0}
    top = next(c for c in plan.nodes(CellNode) if c.metric == "top")
    assert dict(top.args) == {"over": ["head"], "how": "max"} and top.hooks == ()
    loss = next(c for c in plan.nodes(CellNode) if c.metric == "loss")
    assert loss.hooks == ("next_logprob",)
    assert dict(loss.args) == {"mask": "auto", "split": "all"}  # its defaults


# ----------------------------------------------------------------------------- refinement
TRANSITION = '''\
import numpy as np
import xarray as xr

from mispec.metrics.core import metric


def first_below(steps, values, below=0.0):  # refine passes the metric's bound ``below``
    """(before, at): the checkpoint before the first value at or below ``below``, and it."""
    hit = np.flatnonzero(np.asarray(values) <= below)
    hit = hit[hit > 0]
    if hit.size == 0:
        return None
    return int(steps[hit[0] - 1]), int(steps[hit[0]])


@metric(dims=(), inputs=("series",), reduces="step", bracket=first_below)
def drop_step(series, below: float = 2.74):
    """The first step at which the series is at or below ``below``."""
    found = first_below(series.step.values, series.values, below)
    return xr.DataArray(float("nan") if found is None else float(found[1]))
'''

REFINED = """\
mispec: 1
name: arch-plan-refine
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 60
      batch_size: 16
    seeds: [0]
    checkpoints: {schedule: log, count: 20}
    refine: {transition: drop, resolution: 1, budget: 20, split: 3}
prompts:
  rep: {generator: repeated_tokens, args: {n: 8, vocab: 16, half_len: 6}, seed: 1}
metrics:
  loss: {fn: loss, prompts: rep}
  drop: {fn: 'arch_plan_transition:drop_step', inputs: {series: loss}}
"""


def _first_below(steps: np.ndarray, values: np.ndarray, below: float) -> tuple[int, int]:
    hit = np.flatnonzero(values <= below)
    hit = hit[hit > 0]
    return int(steps[hit[0] - 1]), int(steps[hit[0]])


def test_a_plugin_transition_refines_through_its_own_bracket(tmp_path):
    (tmp_path / ".mispec").mkdir()
    (tmp_path / "arch_plan_transition.py").write_text(TRANSITION)
    spec = tmp_path / "spec.yaml"
    spec.write_text(REFINED)
    result = mispec.run(spec, progress=False)
    loss = result.open()["toy"].to_dataset().loss.sel(seed=0).dropna("step")
    steps, values = loss.step.values.astype(int), loss.values
    base = np.array(log_schedule(60, 20))
    coarse = _first_below(base, values[np.isin(steps, base)], 2.74)  # the default ``below``
    fine = _first_below(steps, values, 2.74)
    added = sorted(set(steps.tolist()) - set(base.tolist()))
    assert coarse == (35, 42)  # the log schedule left a gap (crossing_step's would be (8, 10))
    assert added and all(coarse[0] < s < coarse[1] for s in added)  # only inside that gap
    assert fine[1] - fine[0] == 1  # resolution 1 reached
    assert float(result.open()["toy"].to_dataset()["drop"].sel(seed=0)) == fine[1]


def test_refinement_imports_no_builtin_metric():
    import mispec.execute.refine as refine

    tree = ast.parse(Path(refine.__file__).read_text())
    imported = [
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    ]
    assert imported and not [m for m in imported if m and m.startswith("mispec.metrics")]


def test_a_bracket_belongs_to_a_reduction_of_one_series_and_takes_only_its_args():
    import pytest

    from mispec.metrics.core import metric

    def gap(steps, values, level=0.5):
        return None

    def odd(steps, values, nope=1):
        return None

    with pytest.raises(TypeError, match="bracket needs a reduction"):
        metric(dims=(), inputs=("x",), bracket=gap, register=False)(lambda x, level=0.5: x)
    with pytest.raises(TypeError, match="parameter 'nope' is not an arg"):
        metric(dims=(), inputs=("x",), reduces="step", bracket=odd, register=False)(
            lambda x, level=0.5: x
        )
    ok = metric(dims=(), inputs=("x",), reduces="step", bracket=gap, register=False)
    assert ok(lambda x, level=0.5: x).__mispec__.bracket is gap
