"""What ``validate`` can check before compute, it checks (issue 26, item 11): each problem
exits 2 at the ``file:line:col`` of the offending key, with its key path and what to do, all
problems of a pass reported together, and the corrected spec validates (and runs)."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import pytest

from mispec.cli.main import main
from tests.conftest import TOY_SPEC

try:
    from tests.helpers.tiny_neox import build_checkpoint_folder
except ImportError:
    from helpers.tiny_neox import build_checkpoint_folder


def at(text: str, line_has: str, value: str) -> str:
    """``line:col`` of ``value`` on the first line of ``text`` containing ``line_has``."""
    for i, line in enumerate(text.splitlines(), start=1):
        if line_has in line:
            return f"{i}:{line.index(value, line.index(line_has)) + 1}"
    raise AssertionError(f"no line has {line_has!r}")


def validate(spec: Path, capsys) -> tuple[int, str]:
    code = main(["validate", str(spec)])
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err, err
    return code, err


def with_metrics(extra: str, base: str = TOY_SPEC) -> str:
    return base + "".join(f"  {line}\n" for line in extra.strip().splitlines())


# ----------------------------------------------------------------------------- metric args
def test_every_metric_arg_problem_in_one_pass(write_spec, capsys):
    text = with_metrics(
        """
pca2: {fn: pca_over_steps, inputs: {series: induction}, args: {k: 2}}
pca3: {fn: pca_over_steps, inputs: {series: induction}, args: {k: 3}}
nte: {fn: neuron_top_examples, prompts: rep, args: {layer: 5, neurons: [1, 1000]}}
pp: {fn: path_patching, prompts: rep, args: {receivers: [[0, 1], [7, 0], [0, 9]]}}
to: {fn: attention_to, prompts: rep, args: {key_token: 99}}
""",
        TOY_SPEC.replace("early: 1, late: 10", "early: 10, late: 2"),
    )
    spec = write_spec(text)
    code, err = validate(spec, capsys)
    assert code == 2
    n = spec.name
    expected = [
        f"{n}:{at(text, '  icl:', '2}')}: "
        "metrics.icl.args.late: late = 2 must come after early = 10",
        f"{n}:{at(text, 'pca3:', '3}')}: metrics.pca3.args.k: 'pca3' gives dim 'pc' 3 entries "
        "(k: 3), but 'pca2' gives it 2",
        f"{n}:{at(text, 'nte:', '5,')}: metrics.nte.args.layer: layer 5 does not exist in "
        "model 'toy', which has 2 layers (valid: 0..1)",
        f"{n}:{at(text, 'nte:', '1000')}: metrics.nte.args.neurons[1]: neuron 1000 does not "
        "exist in model 'toy', which has no MLP neurons",
        f"{n}:{at(text, 'nte:', '1, 1000')}: metrics.nte.args.neurons[0]: neuron 1 does not "
        "exist in model 'toy', which has no MLP neurons",
        f"{n}:{at(text, 'pp:', '[7, 0]')}: metrics.pp.args.receivers[1]: layer 7 does not "
        "exist in model 'toy', which has 2 layers",
        f"{n}:{at(text, 'pp:', '[0, 9]')}: metrics.pp.args.receivers[2]: head 9 does not "
        "exist in model 'toy', which has 2 heads (valid: 0..1)",
        f"{n}:{at(text, 'to:', '99')}: metrics.to.args.key_token: vocab 99 does not exist in "
        "model 'toy', which has 16 tokens",
        # an attention-only model has no MLP hooks: found from its config, without training
        f"{n}:{at(text, 'nte:', 'neuron_top_examples')}: metrics.nte.fn: metric "
        "'neuron_top_examples' reads hook 'blocks.{layer}.mlp.hook_post', but model 'toy' "
        "is attention-only",
    ]
    for line in expected:
        assert line in err, f"{line}\n---\n{err}"
    assert f"{len(expected)} problems in spec" in err
    assert "pp.args.receivers[0]" not in err  # [0, 1] is a head of the model


def test_corrected_metric_args_validate_and_run(write_spec, capsys):
    """pca_over_steps with one k twice, icl_score in order: validates, runs, and the results
    hold both projections over one 'pc' dim (before: an AlignmentError after all compute)."""
    text = with_metrics(
        """
pca2: {fn: pca_over_steps, inputs: {series: induction}, args: {k: 2}}
pca2b: {fn: pca_over_steps, inputs: {series: induction}, args: {k: 2, fit: past}}
"""
    )
    spec = write_spec(text)
    assert validate(spec, capsys)[0] == 0
    assert main(["run", str(spec)]) == 0
    import mispec

    ds = mispec.open_results(spec.parent / "runs" / "tiny")["toy"].to_dataset()
    assert ds["pca2"].sizes["pc"] == 2 and ds["pca2b"].sizes["pc"] == 2
    assert float(ds["icl"].isel(step=-1, seed=0)) == pytest.approx(
        float(ds["per_token_loss"].sel(pos=10).isel(step=-1, seed=0))
        - float(ds["per_token_loss"].sel(pos=1).isel(step=-1, seed=0)),
        abs=1e-5,
    )


def test_a_ring_of_group_waits_is_refused_at_validate(write_spec, capsys):
    base = TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1]")
    text = with_metrics(
        """
a: {fn: reduce, inputs: {x: {metric: induction, seed: 1}}, args: {over: [layer]}}
c: {fn: reduce, inputs: {x: {metric: induction, seed: 0}}, args: {over: [head]}}
""",
        base,
    )
    spec = write_spec(text)
    code, err = validate(spec, capsys)
    assert code == 2
    assert f"{spec.name}:{at(text, '  c:', '{metric')}: metrics.c.inputs.x: " in err
    assert "wait on each other in a ring" in err and "read them in one direction only" in err
    # one direction only: fine
    spec = write_spec(
        text.replace(
            "  c: {fn: reduce, inputs: {x: {metric: induction, seed: 0}}",
            "  c: {fn: reduce, inputs: {x: induction}",
        )
    )
    assert validate(spec, capsys)[0] == 0


def test_icl_early_before_late_default_at_the_metric(write_spec, capsys):
    spec = write_spec(TOY_SPEC.replace("early: 1, late: 10", "early: 0, late: 10"))
    code, err = validate(spec, capsys)
    assert code == 2 and "metrics.icl.args.early: early = 0 is not a position" in err


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("factor", [".nan", ".inf", "-.inf", "1.0e+300", "1.0e+7"])
def test_scale_factor_finite_and_bounded(write_spec, capsys, factor):
    line = f"      init: [{{op: scale, params: [embed.weight], factor: {factor}}}]\n"
    text = TOY_SPEC.replace("      batch_size: 16\n", "      batch_size: 16\n" + line)
    spec = write_spec(text)
    code, err = validate(spec, capsys)
    assert code == 2
    assert (
        f"{spec.name}:{at(text, 'factor', factor)}: models.toy.train.init[0].factor: a scale "
        "factor must be a finite number between -1e+06 and 1e+06"
    ) in err


def test_freeze_of_everything_and_a_phase_past_the_end(write_spec, capsys):
    text = TOY_SPEC.replace(
        "      batch_size: 16\n", "      batch_size: 16\n      freeze: {params: ['*']}\n"
    )
    spec = write_spec(text)
    code, err = validate(spec, capsys)
    assert code == 2
    assert (
        f"{spec.name}:{at(text, 'freeze', '{')}: models.toy.train.freeze: this freezes every weight, which leaves nothing to train"
        in err
    )
    spec = write_spec(text.replace("['*']", "['embed.*']"))
    assert validate(spec, capsys)[0] == 0
    text = TOY_SPEC.replace(
        "      task: repeated_tokens\n      task_args: {vocab: 16, half_len: 6}\n",
        "      mixture:\n        tasks:\n          a: {task: repeated_tokens, task_args: {vocab: 16, half_len: 6}}\n"
        "          b: {task: repeated_tokens, task_args: {vocab: 16, half_len: 6}}\n"
        "        schedule: [{step: 10, weights: {a: 1}}, {step: 40, weights: {b: 1}}]\n",
    )
    spec = write_spec(text)
    code, err = validate(spec, capsys)
    assert code == 2
    assert (
        f"{spec.name}:{at(text, 'schedule', '40')}: models.toy.train.mixture.schedule[1].step: schedule step 40 is never reached: training runs updates 0..39"
        in err
    )
    assert "schedule[0]" not in err
    assert validate(write_spec(text.replace("step: 40", "step: 39")), capsys)[0] == 0


# ----------------------------------------------------------------------------- plugins
PLUGIN = """\
{future}from typing import Any

from mispec.metrics.core import metric


@metric(dims=(), hooks=({hook!r},), register=False)
def skip_loss(acts: Any, prompts: Any, exclude_first: int = 1) -> float:
    return 0.0
"""


@pytest.mark.parametrize("future", ["", "from __future__ import annotations\n"])
def test_plugin_arg_types_with_and_without_future_annotations(write_spec, capsys, future):
    text = with_metrics("sk: {fn: 'plug:skip_loss', prompts: rep, args: {exclude_first: two}}")
    spec = write_spec(text)
    (spec.parent / "plug.py").write_text(
        PLUGIN.format(future=future, hook="blocks.{layer}.attn.hook_pattern")
    )
    code, err = validate(spec, capsys)
    assert code == 2
    assert (
        f"{spec.name}:{at(text, '  sk:', 'two')}: metrics.sk.args.exclude_first: Input should be a valid integer"
        in err
    )
    assert validate(write_spec(text.replace("two", "2")), capsys)[0] == 0


QUOTED = "'hooky"


def test_plugin_hook_names_checked_against_the_model(write_spec, capsys):
    text = with_metrics("sk: {fn: 'hooky:skip_loss', prompts: rep}")
    spec = write_spec(text)
    (spec.parent / "hooky.py").write_text(
        PLUGIN.format(future="", hook="blocks.{layer}.attn.hook_patern")
    )
    code, err = validate(spec, capsys)
    assert code == 2
    assert (
        f"{spec.name}:{at(text, '  sk:', QUOTED)}: metrics.sk.fn: metric 'hooky:skip_loss' reads "
        "hook 'blocks.{layer}.attn.hook_patern', which model 'toy' does not have (did you mean "
        "'blocks.{layer}.attn.hook_pattern'?)"
    ) in err
    # a bridge hook name beyond TransformerLens's templates is found on the native model
    (spec.parent / "hooky2.py").write_text(
        PLUGIN.format(future="", hook="blocks.{layer}.attn.q.hook_out")
    )
    assert validate(write_spec(text.replace("hooky:", "hooky2:")), capsys) == (0, "")


# ----------------------------------------------------------------------------- .jsonl
@functools.cache
def checkpoint_folder() -> Path:
    return build_checkpoint_folder(Path(tempfile.mkdtemp()) / "run", [0, 10], vocab_size=16)


JSONL_SPEC = """\
mispec: 1
name: jsonl
models:
  neox: {{path: {folder}, checkpoints: all}}
prompts:
  ioi: {{file: p.jsonl}}
metrics:
  ld: {{fn: logit_diff, prompts: ioi}}
"""
GOOD = [{"text": "w1 w2 w3 w1", "answer": "w2", "wrong_answer": "w1"}] * 2


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ('{"text": "w1 w2", "text": "w3", "answer": "w2", "wrong_answer": "w1"}',
         "field 'text' appears twice in this line: keep one"),
        ('{"text": "w1 \\ud800 w2", "answer": "w2", "wrong_answer": "w1"}',
         "'w1 \\ud800 w2' holds a lone surrogate escape"),
        ('{"text": "w1 w2 w3 w1", "answer": "zebra", "wrong_answer": "w1"}',
         "answer 'zebra' is not in the vocabulary for model 'neox': it becomes the unknown "
         "token '<unk>'"),
        (json.dumps({"text": " ".join(["w1"] * 200), "answer": "w2", "wrong_answer": "w1"}),
         "the prompt is 201 tokens for model 'neox' (BOS included), longer than the model's "
         "context (n_ctx = 64): shorten it, or set `max_tokens: 64`"),
        ('{"text": "w1 w2", "answer": "w2", "wrong_answer": "w1"}', None),
    ],
)  # fmt: skip
def test_jsonl_problems_at_their_line(write_spec, capsys, second_line, message):
    spec = write_spec(JSONL_SPEC.format(folder=checkpoint_folder()))
    jsonl = spec.parent / "p.jsonl"
    jsonl.write_text(json.dumps(GOOD[0]) + "\n" + second_line + "\n")
    code, err = validate(spec, capsys)
    assert code == 2
    if message is None:  # prompts of different lengths: the last position is padding
        assert (
            f"{spec.name}:8:3: metrics.ld: logit_diff: the last position is padding for 1 "
            "of 2 prompts" in err
        )
        assert "set args: {position: answer_pos}" in err
        spec.write_text(
            spec.read_text().replace("prompts: ioi}", "prompts: ioi, args: {position: answer_pos}}")
        )
        assert validate(spec, capsys)[0] == 0
    else:
        assert f"{jsonl}:2:1: prompts.ioi: {message}" in err


def test_a_huge_line_is_refused_from_its_start(write_spec, capsys, monkeypatch):
    """A multi-megabyte prompt is refused after encoding a few kB of it (the audit's 18 MB
    line took 68 s and 2.3 GB): counted in characters handed to the tokenizer, not timed."""
    import mispec.prompts.text as text

    encoded: list[int] = []
    real = text.encode

    def counting(tokenizer, s):  # type: ignore[no-untyped-def]
        encoded.append(len(s))
        return real(tokenizer, s)

    monkeypatch.setattr(text, "encode", counting)
    spec = write_spec(JSONL_SPEC.format(folder=checkpoint_folder()))
    jsonl = spec.parent / "p.jsonl"
    huge = {"text": "w1 " * 1_000_000, "answer": "w2", "wrong_answer": "w1"}
    jsonl.write_text(json.dumps(GOOD[0]) + "\n" + json.dumps(huge) + "\n")
    code, err = validate(spec, capsys)
    assert code == 2
    assert f"{jsonl}:2:1: prompts.ioi: the prompt is at least 1365 tokens for model 'neox'" in err
    assert "longer than the model's context (n_ctx = 64)" in err
    assert max(encoded) <= 4096  # the 3 MB text itself was never tokenized


def test_invalid_utf8_at_its_line(write_spec, capsys):
    spec = write_spec(JSONL_SPEC.format(folder=checkpoint_folder()))
    jsonl = spec.parent / "p.jsonl"
    jsonl.write_bytes(json.dumps(GOOD[0]).encode() + b'\n{"text": "w1 \xff w2"}\n')
    code, err = validate(spec, capsys)
    assert code == 2
    assert f"{jsonl}:2:1: prompts.ioi: not valid UTF-8 (bytes ff at column 14)" in err
