"""Planner invariants: node counts, deterministic keys, invalidation, cycles, purity, speed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mispec.errors import PlanError
from mispec.planning.graph import build_plan
from mispec.planning.nodes import ForwardNode
from mispec.planning.resolve import resolve
from mispec.validation.load import load_spec
from tests.conftest import TOY_SPEC


def _plan(write_spec, text):
    loaded = load_spec(write_spec(text))
    return build_plan(loaded.spec, resolve(loaded))


def test_node_counts(write_spec):
    plan = _plan(write_spec, TOY_SPEC)
    counts = plan.counts()
    # 1 series x 3 steps; 4 per-checkpoint metrics (3 activation + 1 derived), 1 reduction
    assert counts == {
        "prompts": 1,
        "train": 1,
        "group": 3,
        "forward": 3,
        "cell": 12,
        "reduction": 1,
        "assemble": 1,
    }
    fwd = plan.nodes(ForwardNode)[0]
    # one forward pass carries the union of the hooks of its three activation metrics
    assert dict(fwd.hooks) == {"blocks.{layer}.attn.hook_pattern": "store", "next_logprob": "store"}


def test_keys_are_stable_across_processes(write_spec):
    path = write_spec(TOY_SPEC)
    code = (
        "import json,sys; from mispec.validation.load import load_spec; from mispec.planning.resolve import resolve;"
        "from mispec.planning.graph import build_plan; l=load_spec(sys.argv[1]);"
        "p=build_plan(l.spec, resolve(l)); print(json.dumps({n.id: n.key for n in p.nodes()}))"
    )
    outs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code, str(path)],
                capture_output=True,
                text=True,
                check=True,
                env={"PYTHONHASHSEED": str(i)},
            ).stdout
        )
        for i in (1, 2)
    ]
    assert outs[0] == outs[1]


def test_key_order_in_yaml_does_not_matter(write_spec):
    a = _plan(write_spec, TOY_SPEC)
    swapped = TOY_SPEC.replace("{vocab: 16, half_len: 6}", "{half_len: 6, vocab: 16}")
    b = _plan(write_spec, swapped)
    assert {n.id: n.key for n in a.nodes()} == {n.id: n.key for n in b.nodes()}


def _keys(plan):
    return {n.id: n.key for n in plan.nodes()}


def test_changing_one_metric_arg_invalidates_only_downstream(write_spec):
    a = _keys(_plan(write_spec, TOY_SPEC))
    b = _keys(_plan(write_spec, TOY_SPEC.replace("late: 10", "late: 11")))
    changed = {n for n in a if a[n] != b[n]}
    assert changed == {f"cell:icl/toy/s0/step{s}" for s in (0, 20, 40)} | {"assemble"}


def test_changing_prompt_seed_invalidates_forwards_not_checkpoints(write_spec):
    a = _keys(_plan(write_spec, TOY_SPEC))
    b = _keys(_plan(write_spec, TOY_SPEC.replace("seed: 1", "seed: 2")))
    changed = {n.split(":")[0] for n in a if a[n] != b[n]}
    assert changed == {"prompts", "forward", "cell", "reduce", "assemble"}
    assert all(a[n] == b[n] for n in a if n.startswith(("group:", "train:")))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lr=st.floats(1e-5, 1e-1), steps=st.integers(41, 400), vocab=st.integers(8, 15))
def test_any_training_change_changes_checkpoint_keys(write_spec, lr, steps, vocab):
    base = _keys(_plan(write_spec, TOY_SPEC))
    text = TOY_SPEC.replace("batch_size: 16", f"batch_size: 16\n      optimizer: {{lr: {lr!r}}}")
    other = _keys(_plan(write_spec, text))
    if lr != 1e-3:
        assert other["group:toy/s0/step20"] != base["group:toy/s0/step20"]
    # raising steps keeps the identity of the checkpoints already trained (resume, not retrain)
    more = _keys(_plan(write_spec, TOY_SPEC.replace("steps: 40", f"steps: {steps}")))
    assert more["group:toy/s0/step20"] == base["group:toy/s0/step20"]
    assert more["train:toy/s0"] == base["train:toy/s0"]  # same requested steps -> same node key


def test_adding_checkpoints_keeps_existing_keys(write_spec):
    a = _keys(_plan(write_spec, TOY_SPEC))
    b = _keys(_plan(write_spec, TOY_SPEC.replace("[0, 20, 40]", "[0, 10, 20, 40]")))
    assert {k for k in b if k not in a} >= {"cell:loss/toy/s0/step10", "forward:toy/s0/step10/rep"}
    assert all(a[k] == b[k] for k in a if k.startswith(("cell:loss", "forward:")))


def test_cycle_is_a_plan_error_naming_the_cycle(write_spec):
    from mispec.planning.resolve import Resolution
    from mispec.spec.schema import Spec

    spec = Spec.model_validate(
        {
            "mispec": 1,
            "name": "c",
            "models": {"m": {"path": "x"}},
            "metrics": {
                "a": {"fn": "icl_score", "inputs": {"per_token_loss": "b"}},
                "b": {"fn": "icl_score", "inputs": {"per_token_loss": "a"}},
            },
        }
    )
    with pytest.raises(PlanError, match="a -> b -> a"):
        build_plan(spec, Resolution({}, {}, {}))


def test_planner_is_pure(write_spec, tmp_path):
    seeds = "[0, 1, 2]"
    metrics = "\n".join(
        f"  m{i}: {{fn: loss, prompts: rep, args: {{mask: null}}}}" for i in range(8)
    )
    text = (
        TOY_SPEC.replace("seeds: [0]", f"seeds: {seeds}")
        .replace("checkpoints: {steps: [0, 20, 40]}", "checkpoints: {schedule: log, count: 150}")
        .replace("steps: 40", "steps: 5000")
        .replace("  transition:", metrics + "\n  transition:")
    )
    loaded = load_spec(write_spec(text))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    resolution = resolve(loaded)
    plan = build_plan(loaded.spec, resolution)
    # its speed is measured in benchmarks/cli_latency.py (`mispec plan`), not asserted here
    assert plan.counts()["cell"] == 3 * 150 * 12 and plan.counts()["forward"] == 450
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # wrote nothing
    code = (
        "import sys; from mispec.validation.load import load_spec; from mispec.planning.resolve import resolve;"
        "from mispec.planning.graph import build_plan; l = load_spec(sys.argv[1]);"
        "build_plan(l.spec, resolve(l));"
        "print(sorted(m for m in ('torch', 'transformer_lens', 'zarr') if m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(loaded.path)], capture_output=True, text=True, check=True
    )
    assert res.stdout.strip() == "[]"  # planning loads no model library at all
