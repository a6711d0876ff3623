"""``sweep:`` in the spec: every problem at its line:col (exit 2 from the CLI), and the points
planned with the keys of the equivalent hand-written entries — a point of a ``train_frac``
sweep measures its own split (pure planning: nothing is trained here)."""

from __future__ import annotations

import pytest

from mispec.errors import SpecError
from mispec.planning.graph import build_plan
from mispec.planning.nodes import CellNode, ForwardNode
from mispec.planning.resolve import resolve
from mispec.validation.load import load_spec

GROK = """\
mispec: 1
name: grid
models:
  grok:
    train:
      task: modular_addition
      task_args: {p: 7, train_frac: 0.5}
      arch: {n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, d_mlp: 32}
      steps: 30
      batch_size: null
      optimizer: {weight_decay: 1.0}
SWEEP
    seeds: [0]
    checkpoints: {steps: [0, 30]}
prompts:
  table:
    generator: modular_addition
    args: {p: 7, train_frac: 0.5}
metrics:
  test_loss: {fn: loss, prompts: table, args: {mask: loss_mask, split: test}}
  norm: {fn: weight_norm}
"""
GRID = (
    "    sweep:\n      optimizer.weight_decay: [0.0, 1.0]\n      task_args.train_frac: [0.3, 0.7]\n"
)


def _spec(sweep: str) -> str:
    return GROK.replace("SWEEP\n", sweep)


# (id, sweep block, line, col, key path, fragment of the message)
CASES = [
    (
        "unknown-key-path",
        "    sweep: {optimizer.weigth_decay: [0.0, 1.0]}\n",
        12,
        13,
        "models.grok.sweep.optimizer.weigth_decay",
        "train.optimizer has no 'weigth_decay' (did you mean 'weight_decay'?)",
    ),
    (
        "unknown-top-key",
        "    sweep:\n      stpes: [10, 20]\n",
        13,
        7,
        "models.grok.sweep.stpes",
        "train has no 'stpes' (did you mean 'steps'?)",
    ),
    (
        "unsweepable-task",
        "    sweep:\n      task: [modular_addition, sorting]\n",
        13,
        7,
        "models.grok.sweep.task",
        "'task' cannot be swept",
    ),
    (
        "empty-list",
        "    sweep:\n      optimizer.lr: []\n",
        13,
        21,
        "models.grok.sweep.optimizer.lr",
        "non-empty list",
    ),
    (
        "wrong-type",
        "    sweep:\n      optimizer.lr: [0.001, fast]\n",
        13,
        29,
        "models.grok.sweep.optimizer.lr",
        "valid number",
    ),
    (
        "bad-task-arg",
        "    sweep:\n      task_args.train_frac: [0.5, 1.5]\n",
        13,
        35,
        "models.grok.sweep.task_args.train_frac",
        "1.5",
    ),
    (
        "a-block",
        "    sweep:\n      optimizer: [1, 2]\n",
        13,
        7,
        "models.grok.sweep.optimizer",
        "is a block",
    ),
    (
        "too-many-points",
        "    sweep:\n      optimizer.lr: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
        "      steps: [1, 2, 3, 4, 5, 6, 7, 8]\n",
        12,
        5,
        "models.grok.sweep",
        "the grid has 72 points, more than 64: set 'max_points: 72'",
    ),
    (
        "zip-lengths",
        "    sweep:\n      steps: [10, 20]\n      task_args.train_frac: [0.3, 0.5, 0.7]\n"
        "      zip: [[steps, task_args.train_frac]]\n",
        15,
        13,
        "models.grok.sweep.zip[0]",
        "one length",
    ),
    (
        "metric-arg-does-not-follow",
        "    sweep:\n      task_args.p: [7, 11]\n",
        23,
        1,
        "metrics.fourier.args.p",
        "does not follow the sweep of task_args.p",
    ),
]


@pytest.mark.parametrize(("case", "sweep", "line", "col", "key", "fragment"), CASES)
def test_sweep_problems_point_at_their_cause(write_spec, case, sweep, line, col, key, fragment):
    text = _spec(sweep)
    if case == "metric-arg-does-not-follow":
        text += "  fourier: {fn: fourier_sparsity, args: {p: 7}}\n"
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    (problem,) = info.value.problems
    assert (problem.key_path, fragment in problem.message) == (key, True), problem
    if case != "metric-arg-does-not-follow":
        assert (problem.line, problem.col) == (line, col), problem


def test_the_cli_refuses_a_bad_sweep_with_exit_2(write_spec, capsys):
    from mispec.cli.main import main

    path = write_spec(_spec("    sweep: {optimizer.weigth_decay: [0.0]}\n"))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "spec.yaml:12:13: models.grok.sweep.optimizer.weigth_decay" in err
    assert "Traceback" not in err


def test_max_points_allows_a_larger_grid(write_spec):
    sweep = (
        "    sweep:\n      optimizer.lr: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n"
        "      steps: [30, 31, 32, 33, 34, 35, 36, 37]\n      max_points: 72\n"
    )
    loaded = load_spec(write_spec(_spec(sweep)))
    assert len(loaded.spec.models) == 72


def _plan(path):
    loaded = load_spec(path)
    return build_plan(loaded.spec, resolve(loaded), loaded.base_dir)


def test_points_plan_the_keys_of_hand_written_entries_each_on_its_own_split(write_spec):
    swept = _plan(write_spec(_spec(GRID), "swept.yaml"))
    keys = {}
    for wd in (0.0, 1.0):
        for frac in (0.3, 0.7):
            hand = _spec("").replace("weight_decay: 1.0", f"weight_decay: {wd}")
            hand = hand.replace("train_frac: 0.5", f"train_frac: {frac}")
            plan = _plan(write_spec(hand, f"hand_{wd}_{frac}.yaml"))
            keys[(wd, frac)] = {(c.metric, c.step): c.key for c in plan.nodes(CellNode)}
    got = {}
    for c in swept.nodes(CellNode):
        point = swept.spec.models[c.model].sweep_point
        wd, frac = point.values["optimizer.weight_decay"], point.values["task_args.train_frac"]
        got.setdefault((wd, frac), {})[(c.metric, c.step)] = c.key
    assert got == keys
    assert len({k for per in keys.values() for k in per.values()}) == 16  # all distinct
    # each point's forward pass reads its own copy of the table, split by its train_frac
    for f in swept.nodes(ForwardNode):
        point = swept.spec.models[f.model].sweep_point
        args = swept.spec.prompts[f.prompts].args
        assert args["train_frac"] == point.values["task_args.train_frac"] and args["p"] == 7


def test_a_spec_without_sweep_dumps_as_before(write_spec):
    loaded = load_spec(write_spec(_spec("")))
    dumped = loaded.spec.models["grok"].model_dump(mode="json")
    assert "sweep" not in dumped and "sweep_point" not in dumped


def test_a_prompt_set_of_another_generator_is_refused(write_spec):
    text = _spec(GRID).replace("generator: modular_addition", "generator: modular_subtraction")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    messages = [p.message for p in info.value.problems]
    assert any("cannot follow the sweep of task_args.train_frac" in m for m in messages), messages
