"""Adaptive checkpoints (``refine:``): the crossing a refined log schedule locates equals the
one a dense schedule finds, a refined run's checkpoints are bit-identical to a straight run's,
a re-run is fully cached, ``plan`` says what refinement may add, bad ``refine:`` keys are
located problems."""

from __future__ import annotations

import numpy as np
import pytest

import mispec
from mispec.errors import SpecError
from mispec.execute.refine import cut
from mispec.metrics.builtin.crossing import crossing_bracket
from mispec.spec.selectors import log_schedule

RESOLUTION = 2
# The loss of this toy falls from ~3.1 through 2.79 between steps 19 and 44 (both seeds), where
# the 20-step log schedule over 60 steps has gaps of 4 to 7 steps: there is something to refine.
LEVEL = 2.79
SPEC = f"""\
mispec: 1
name: zoomtiny
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {{vocab: 16, half_len: 6}}
      arch: {{n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}}
      steps: 60
      batch_size: 16
    seeds: [0, 1]
    checkpoints: {{schedule: log, count: 20}}
    refine: {{transition: crossing, resolution: {RESOLUTION}, budget: 20, split: 3}}
prompts:
  rep:
    generator: repeated_tokens
    args: {{n: 8, vocab: 16, half_len: 6}}
    seed: 1
metrics:
  loss: {{fn: loss, prompts: rep}}
  crossing: {{fn: crossing_step, inputs: {{series: loss}}, args: {{level: {LEVEL}}}}}
  width: {{fn: crossing_width, inputs: {{series: loss}}, args: {{level: {LEVEL}}}}}
"""


# ----------------------------------------------------------------------------- pure parts
def test_crossing_bracket_of_a_sigmoid_and_of_no_transition():
    steps = np.arange(0, 1001, dtype=float)
    y = 1.0 / (1.0 + np.exp(-(steps - 612.3) / 20.0))  # from ~0 to ~1: level ~0.5 at 612.3
    assert crossing_bracket(steps, y) == (612, 613)
    coarse = np.array([0, 100, 400, 700, 1000], dtype=float)
    # five checkpoints: the jump dominates the noise estimate, so only min_size 0 keeps it
    assert crossing_bracket(coarse, np.interp(coarse, steps, y)) is None
    assert crossing_bracket(coarse, np.interp(coarse, steps, y), min_size=0) == (400, 700)
    # a fall to a given level: -y <= -0.9 from 612.3 + 20 ln 9 = 656.24 on
    assert crossing_bracket(steps, -y, level=-0.9) == (656, 657)
    assert crossing_bracket(steps, np.ones_like(steps)) is None  # flat: no crossing


def test_cut_divides_the_gap_evenly_and_never_repeats_its_ends():
    assert cut(100, 200, 4) == [125, 150, 175]
    assert cut(10, 13, 8) == [11, 12]  # every step between, no more
    assert cut(10, 12, 2) == [11]


# ----------------------------------------------------------------------------- a refined run
@pytest.fixture(scope="module")
def refined(tmp_path_factory):
    root = tmp_path_factory.mktemp("refine")
    (root / ".mispec").mkdir()
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    before = mispec.plan(spec)
    result = mispec.run(spec, progress=False)
    return root, spec, before, result


def _series(result, seed):
    ds = result.open()["toy"].to_dataset()
    loss = ds.loss.sel(seed=seed).dropna("step")
    return loss.step.values.astype(int), loss.values


def test_refined_crossing_equals_the_dense_schedules_within_the_resolution(refined):
    root, _, _, result = refined
    ds = result.open()["toy"].to_dataset()
    base = log_schedule(60, 20)
    dense_steps = set(base)
    coarse = {}
    for seed in (0, 1):
        steps, values = _series(result, seed)
        assert set(base) <= set(steps) and len(steps) > len(base)  # it added checkpoints
        # the first pass's gap, read off the checkpoints of the log schedule alone
        on_base = np.isin(steps, base)
        coarse[seed] = crossing_bracket(steps[on_base], values[on_base], LEVEL)
        assert coarse[seed] is not None
        assert coarse[seed][1] - coarse[seed][0] > RESOLUTION  # there was something to refine
        assert float(ds.width.sel(seed=seed)) <= RESOLUTION
        dense_steps |= set(range(coarse[seed][0], coarse[seed][1] + 1))
    dense = root / "dense.yaml"
    dense.write_text(
        SPEC.replace("{schedule: log, count: 20}", f"{{steps: {sorted(dense_steps)}}}").replace(
            f"    refine: {{transition: crossing, resolution: {RESOLUTION}, budget: 20, split: 3}}\n",
            "",
        )
    )
    dense_ds = mispec.run(dense, progress=False, out=root / "runs" / "dense").open()["toy"]
    dense_ds = dense_ds.to_dataset()
    for seed in (0, 1):
        found = float(ds.crossing.sel(seed=seed))
        truth = float(dense_ds.crossing.sel(seed=seed))
        assert float(dense_ds.width.sel(seed=seed)) == 1  # every step in the gap
        assert coarse[seed][0] < truth <= coarse[seed][1]
        assert 0 <= found - truth < RESOLUTION, (seed, found, truth)


def test_refined_checkpoints_equal_a_straight_runs_bit_for_bit(refined, tmp_path):
    import torch
    from safetensors.torch import load_file

    from mispec.models import ensure_trained
    from mispec.models.checkpoint_layout import MODEL_FILE, OPTIM_FILE
    from mispec.models.runs import run_dir
    from mispec.runtime.threads import pinned_torch_threads

    root, spec, _, result = refined
    train = mispec.load_spec(spec).spec.models["toy"].train
    for seed in (0, 1):
        steps = [int(s) for s in _series(result, seed)[0]]
        with pinned_torch_threads(1):  # as the run's executor (the local profile's torch_threads)
            report = ensure_trained("toy", train, seed, steps, tmp_path, progress=False)
        assert report.resumed_from is None and report.steps_trained == 60  # straight
        a, b = run_dir(train, seed, root / ".mispec"), run_dir(train, seed, tmp_path)
        for step in steps:
            for name in (MODEL_FILE, OPTIM_FILE):
                refined_state = load_file(a / name.format(step=step))
                straight = load_file(b / name.format(step=step))
                assert refined_state.keys() == straight.keys()
                for key, tensor in refined_state.items():  # the same bits, not just close
                    assert tensor.dtype == straight[key].dtype
                    assert (
                        tensor.view(-1)
                        .view(torch.uint8)
                        .equal(straight[key].view(-1).view(torch.uint8))
                    ), (seed, step, name, key)


def test_a_rerun_is_fully_cached_and_plan_replays_the_rounds(refined):
    _, spec, before, result = refined
    assert before.refinement_lines() == [  # nothing known yet: only what it may add
        f"toy seed {seed}: refine may add up to 20 more checkpoint(s) around crossing "
        f"(to {RESOLUTION} step(s))"
        for seed in (0, 1)
    ]
    again = mispec.run(spec, progress=False)
    assert not again.did_work and again.counters["training_steps"] == 0
    planned = mispec.plan(spec)
    assert planned.status.up_to_date
    for seed in (0, 1):
        steps = planned.plan.resolution.series[("toy", seed)].steps
        assert list(steps) == [int(s) for s in _series(result, seed)[0]]
    lines = planned.refinement_lines()
    assert len(lines) == 2 and all(f"resolution {RESOLUTION} reached" in line for line in lines)
    assert any("refine crossing" in line for line in result.summary)


@pytest.mark.parametrize(
    "refine, message",
    [
        ("{transition: crossng}", "unknown metric 'crossng' (did you mean 'crossing'?)"),
        ("{transition: width}", "refine needs a crossing_step metric"),
        ("{transition: crossing, resolution: 0}", "greater than or equal to 1"),
    ],
)
def test_bad_refine_keys_are_located_problems(write_spec, refine, message):
    text = SPEC.replace(
        f"{{transition: crossing, resolution: {RESOLUTION}, budget: 20, split: 3}}", refine
    )
    with pytest.raises(SpecError) as err:
        mispec.load_spec(write_spec(text))
    assert message in str(err.value)
    assert "spec.yaml:13:" in str(err.value)


def test_refine_needs_one_number_per_checkpoint(write_spec):
    text = SPEC.replace(
        "  loss: {fn: loss, prompts: rep}", "  loss: {fn: per_token_loss, prompts: rep}"
    )
    with pytest.raises(SpecError) as err:
        mispec.load_spec(write_spec(text))
    assert "not one number per checkpoint" in str(err.value)


def test_the_zoom_spec_at_a_small_size_summarises_crossing_and_lead(tmp_path):
    """specs/zoom.yaml with 40 training steps: its summary gives each seed's crossing with its
    resolution (as the results hold them) and the early-warning lead (or 'missed')."""
    from tests.conftest import REPO

    text = (REPO / "specs" / "zoom.yaml").read_text().replace("steps: 1000", "steps: 40")
    (tmp_path / ".mispec").mkdir()
    spec = tmp_path / "zoom.yaml"
    spec.write_text(text)
    result = mispec.run(spec, progress=False)
    ds = result.open()["toy2l"].to_dataset()
    for seed in (0, 1):
        at, width = float(ds.transition.sel(seed=seed)), float(ds.transition_width.sel(seed=seed))
        lead = float(ds.lead_prev_token.sel(seed=seed))
        lines = [line for line in result.summary if line.startswith(f"toy2l seed {seed}: ")]
        refine_line = next(line for line in lines if "refine transition" in line)
        lead_line = next(line for line in lines if "lead_prev_token" in line)
        if np.isfinite(at):
            assert f"refine transition = {at:.0f} (crossed after {at - width:.0f}" in refine_line
            assert width <= 4 or "budget of 24 spent" in refine_line
        else:
            assert "no crossing found" in refine_line
        assert lead_line.endswith(f"{lead:.0f}" if np.isfinite(lead) else "none (missed)")
