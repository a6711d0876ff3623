"""The local executor runs independent (model, seed) lanes — training and the checkpoint
groups and reductions that wait only on it — in their own processes when cores are free:
the checkpoints and results equal a serial run's bit for bit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import xarray as xr

import mispec
from mispec.errors import SpecError
from tests.conftest import TOY_SPEC

TWO_SEEDS = TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1]")


def _profile(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nkind: local\ntorch_threads: 1\n{body}")
    return path


def _checkpoints(store: Path) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """Every saved checkpoint file of the store's runs, by its path in the store: its
    metadata and a digest of each tensor's bytes (the header's key order is not fixed)."""
    from safetensors import safe_open

    out = {}
    for p in sorted(store.rglob("*.safetensors")):
        with safe_open(p, "np") as f:
            digests = {k: hashlib.blake2b(f.get_tensor(k).tobytes()).hexdigest() for k in f.keys()}  # noqa: SIM118
            out[str(p.relative_to(store))] = (dict(f.metadata() or {}), digests)
    return out


@pytest.fixture(scope="module")
def serial_two_seeds(tmp_path_factory) -> mispec.RunResult:
    """The reference: two seeds run entirely in the run's own process."""
    root = tmp_path_factory.mktemp("serial")
    (root / "a").mkdir()
    (root / "a" / "spec.yaml").write_text(TWO_SEEDS)
    serial = _profile(root, "serial", "processes: 1\n")
    return mispec.run(root / "a" / "spec.yaml", executor=str(serial), progress=False)


def test_parallel_training_equals_serial_bit_for_bit(tmp_path, serial_two_seeds):
    (tmp_path / "b").mkdir()
    spec_b = tmp_path / "b" / "spec.yaml"
    spec_b.write_text(TWO_SEEDS)
    parallel = _profile(tmp_path, "parallel", "processes: 2\nparallel_min_steps: 1\n")
    one = serial_two_seeds
    two = mispec.run(spec_b, executor=str(parallel), progress=False)
    assert one.counters == two.counters
    assert one.counters["training_steps"] == 80  # 40 steps for each seed, nothing skipped
    a = _checkpoints(one.run_dir.parents[1] / ".mispec")
    b = _checkpoints(tmp_path / "b" / ".mispec")
    assert sum("model_" in k for k in a) == 6 and a == b  # 3 steps x 2 seeds (+ optimizer)
    xr.testing.assert_identical(one.open()["toy"].to_dataset(), two.open()["toy"].to_dataset())


def test_short_runs_train_in_this_process(tmp_path, monkeypatch):
    import mispec.execute.local.lanes as pt

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for 40-step runs")

    monkeypatch.setattr(pt, "LanePool", no_pool)
    (tmp_path / "spec.yaml").write_text(TWO_SEEDS)
    auto = _profile(tmp_path, "auto", "processes: auto\n")  # parallel_min_steps: 500
    result = mispec.run(tmp_path / "spec.yaml", executor=str(auto), progress=False)
    assert result.counters["training_steps"] == 80


def test_a_bad_processes_option_is_refused(tmp_path):
    (tmp_path / "spec.yaml").write_text(TWO_SEEDS)
    bad = _profile(tmp_path, "bad", "processes: 0\n")
    with pytest.raises(SpecError, match=r"bad.yaml:4:.*greater than or equal to 1"):
        mispec.run(tmp_path / "spec.yaml", executor=str(bad), progress=False)


FAILING_TASK = """
from mispec.errors import UserError
from tests.helpers.reverse_task import Reverse


class Failing(Reverse):
    def sample(self, rng, n):
        raise UserError("failing_task: deliberately out of data")


def failing(length: int = 4, vocab: int = 8) -> Failing:
    return Failing(length=length, vocab=vocab)
"""


def test_a_failure_in_a_training_process_names_its_run(tmp_path):
    from mispec.errors import UserError

    (tmp_path / "failing_task_mod.py").write_text(FAILING_TASK)
    text = TWO_SEEDS.replace("task: repeated_tokens", "task: failing_task_mod:failing").replace(
        "task_args: {vocab: 16, half_len: 6}", "task_args: {length: 8, vocab: 16}"
    )
    (tmp_path / "spec.yaml").write_text(text)
    parallel = _profile(tmp_path, "parallel", "processes: 2\nparallel_min_steps: 1\n")
    with pytest.raises(UserError, match=r"train:toy/s0: failing_task: deliberately out of data"):
        mispec.run(tmp_path / "spec.yaml", executor=str(parallel), progress=False)


def test_fine_tuned_runs_train_in_processes_after_their_parent(tmp_path):
    """``init_from``: a child's training waits for its parent's; a worker knows the parent."""
    from tests.system.test_training_control import SPEC as FINETUNE

    for name in ("a", "b"):  # one seed: the parent's lane, then the child's
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.yaml").write_text(FINETUNE)
    serial = _profile(tmp_path, "serial", "processes: 1\n")
    parallel = _profile(tmp_path, "parallel", "processes: 2\nparallel_min_steps: 1\n")
    one = mispec.run(tmp_path / "a" / "spec.yaml", executor=str(serial), progress=False)
    two = mispec.run(tmp_path / "b" / "spec.yaml", executor=str(parallel), progress=False)
    assert one.counters == two.counters
    assert one.counters["training_steps"] == 12 + 6
    a, b = _checkpoints(tmp_path / "a" / ".mispec"), _checkpoints(tmp_path / "b" / ".mispec")
    assert sum("model_" in k for k in a) == 3 + 2 and a == b
    for name in ("base", "tuned"):
        xr.testing.assert_identical(one.open()[name].to_dataset(), two.open()[name].to_dataset())


CROSS_SEED = (
    TWO_SEEDS
    + """\
  seed_gap: {fn: "lane_plugin:lane_gap", inputs: {value: loss, ref: {metric: loss, seed: 0}}}
"""
)
PLUGIN = """
from mispec.metrics.core import metric


@metric(dims=(), inputs=("value", "ref"))
def lane_gap(value, ref):
    return value - ref
"""


def test_lanes_hold_what_waits_only_on_their_own_training(tmp_path):
    """A lane is its run's training, groups and reductions; a cell that reads another
    seed's cell (and the groups that hold it) stays in the run's own process."""
    from mispec.execute.local.lanes import lanes_of

    (tmp_path / "spec.yaml").write_text(CROSS_SEED)
    (tmp_path / "lane_plugin.py").write_text(PLUGIN)
    planned = mispec.plan(tmp_path / "spec.yaml")
    order = planned.plan.work_order()
    work = planned.plan.work()
    upstream = {n.id: [work.nodes[u]["node"] for u in work.predecessors(n.id)] for n in order}
    trains = [n for n in order if n.id.startswith("train:")]
    lanes = lanes_of(trains, order, upstream)
    ids = [[n.id for n in lane] for lane in lanes]
    assert [lane[0] for lane in ids] == ["train:toy/s0", "train:toy/s1"]
    assert len(ids[0]) == 1 + 3 + 1  # training, 3 groups, the transition reduction
    # seed 1's groups read seed 0's loss: they wait on lane 0, so they run here
    assert ids[1] == ["train:toy/s1"]
    everything = {n.id for n in order}
    assert len(everything - {i for lane in ids for i in lane}) == 3 + 1  # s1 groups + reduction


def test_work_reading_another_lane_equals_serial(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spec.yaml").write_text(CROSS_SEED)
        (tmp_path / name / "lane_plugin.py").write_text(PLUGIN)  # found beside the spec
    serial = _profile(tmp_path, "serial", "processes: 1\n")
    parallel = _profile(tmp_path, "parallel", "processes: 2\nparallel_min_steps: 1\n")
    one = mispec.run(tmp_path / "a" / "spec.yaml", executor=str(serial), progress=False)
    two = mispec.run(tmp_path / "b" / "spec.yaml", executor=str(parallel), progress=False)
    assert one.counters == two.counters
    xr.testing.assert_identical(one.open()["toy"].to_dataset(), two.open()["toy"].to_dataset())
    gap = two.open()["toy"].to_dataset()["seed_gap"]
    loss = two.open()["toy"].to_dataset()["loss"]
    expected = loss - loss.sel(seed=0)
    assert float(abs(gap - expected).max()) == 0.0 and float(abs(gap.sel(seed=1)).max()) > 0


def test_evaluation_lanes_from_this_runs_own_timing(tmp_path, monkeypatch, serial_two_seeds):
    """Without training lanes, once a group of the model is timed, the other seed's pending
    work (estimated at >= parallel_min_seconds) goes to a worker; results equal serial."""
    from mispec.execute.local.lanes import LanePool

    added: list[list[str]] = []
    real_add = LanePool.add

    def spy(self, lane):
        added.append([n.id for n in lane])
        real_add(self, lane)

    monkeypatch.setattr(LanePool, "add", spy)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "spec.yaml").write_text(TWO_SEEDS)
    lanes = _profile(
        tmp_path,
        "lanes",
        "processes: 2\nparallel_min_steps: 100000\nparallel_min_seconds: 0\n",
    )
    one = serial_two_seeds
    two = mispec.run(tmp_path / "b" / "spec.yaml", executor=str(lanes), progress=False)
    # seed 0 trains and evaluates here; after its first group, seed 1's whole lane is given away
    assert len(added) == 1 and added[0][0] == "train:toy/s1"
    assert [i for i in added[0] if i.startswith("group:")] == [
        f"group:toy/s1/step{s}" for s in (0, 20, 40)
    ]
    assert one.counters == two.counters
    xr.testing.assert_identical(one.open()["toy"].to_dataset(), two.open()["toy"].to_dataset())


def test_no_evaluation_lane_below_the_estimate(tmp_path, monkeypatch):
    from mispec.execute.local.lanes import LanePool

    monkeypatch.setattr(LanePool, "add", lambda self, lane: pytest.fail(f"lane {lane[0].id}"))
    (tmp_path / "spec.yaml").write_text(TWO_SEEDS)
    lanes = _profile(tmp_path, "lanes", "processes: 2\nparallel_min_steps: 100000\n")
    result = mispec.run(tmp_path / "spec.yaml", executor=str(lanes), progress=False)
    assert result.counters["forward_passes"] == 6  # 20 s default: a toy's groups stay here


def test_a_run_whose_training_all_goes_to_lanes_never_imports_transformerlens_here(tmp_path):
    """The run's own process waits while its workers import TransformerLens (~3 s each, in
    parallel): it imports it only when it trains or evaluates something itself. Imported
    before the lanes start (once deciding whether seeds train stacked read a model's
    signature), it held every worker back by those seconds (benchmarks/sweep_lanes.py)."""
    import subprocess
    import sys

    (tmp_path / "spec.yaml").write_text(TWO_SEEDS)
    profile = _profile(tmp_path, "lanes", "processes: 2\nparallel_min_steps: 1\n")
    script = (
        "import sys, mispec\n"
        f"r = mispec.run({str(tmp_path / 'spec.yaml')!r}, executor={str(profile)!r}, progress=False)\n"
        "print(r.counters['training_steps'], 'transformer_lens' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    assert out == ["80", "False"]  # both seeds trained (in the workers), TL never imported here
