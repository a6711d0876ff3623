"""Malformed specs: each problem is reported at its exact file:line:col and key path."""

from __future__ import annotations

import pytest

from mispec.errors import SpecError
from mispec.validation.load import load_spec
from tests.conftest import TOY_SPEC


def _edit(old: str, new: str) -> str:
    assert old in TOY_SPEC, old
    return TOY_SPEC.replace(old, new, 1)


# (id, spec text, [(line, col, key path, fragment of the message)])
CASES = [
    (
        "typo-metric-fn",
        _edit("fn: induction_score", "fn: induction_scor"),
        [(21, 19, "metrics.induction.fn", "did you mean 'induction_score'")],
    ),
    (
        "unknown-top-key",
        TOY_SPEC + "metricz: {}\n",
        [(24, 1, "metricz", "unknown key 'metricz' (did you mean 'metrics'")],
    ),
    (
        "unknown-model-key",
        _edit("    seeds: [0]", "    sedes: [0]"),
        [(11, 5, "models.toy.sedes", "did you mean 'seeds'")],
    ),
    (
        "unknown-arch-key",
        _edit("attn_only: true", "attn_olny: true"),
        [(8, 63, "models.toy.train.arch.attn_olny", "did you mean 'attn_only'")],
    ),
    (
        "wrong-type-steps",
        _edit("steps: 40", "steps: forty"),
        [(9, 14, "models.toy.train.steps", "valid integer")],
    ),
    (
        "negative-steps",
        _edit("steps: 40", "steps: -5"),
        [(9, 14, "models.toy.train.steps", "greater than 0")],
    ),
    (
        "zero-batch",
        _edit("batch_size: 16", "batch_size: 0"),
        [(10, 19, "models.toy.train.batch_size", "greater than 0")],
    ),
    (
        "zero-layers",
        _edit("n_layers: 2", "n_layers: 0"),
        [(8, 24, "models.toy.train.arch.n_layers", "greater than 0")],
    ),
    (
        "absurd-layers",
        _edit("n_layers: 2", "n_layers: 100000"),
        [(8, 24, "models.toy.train.arch.n_layers", "less than or equal to 128")],
    ),
    (
        "unknown-task",
        _edit("task: repeated_tokens", "task: repeated_token"),
        [(6, 13, "models.toy.train.task", "did you mean 'repeated_tokens'")],
    ),
    (
        "unknown-task-arg",
        _edit("task_args: {vocab: 16, half_len: 6}", "task_args: {vocab: 16, halflen: 6}"),
        [(7, 30, "models.toy.train.task_args.halflen", "did you mean 'half_len'")],
    ),
    (
        "unknown-generator",
        _edit("generator: repeated_tokens", "generator: repeat_tokens"),
        [(15, 16, "prompts.rep.generator", "did you mean 'repeated_tokens'")],
    ),
    (
        "unknown-generator-arg",
        _edit("args: {n: 8, vocab: 16, half_len: 6}", "args: {n: 8, vocab: 16, half: 6}"),
        [(16, 29, "prompts.rep.args.half", "takes no argument 'half'")],
    ),
    (
        "unknown-prompt-set",
        _edit("loss: {fn: loss, prompts: rep}", "loss: {fn: loss, prompts: reps}"),
        [(19, 29, "metrics.loss.prompts", "did you mean 'rep'")],
    ),
    (
        "unknown-metric-ref",
        _edit("inputs: {per_token_loss: per_token_loss}", "inputs: {per_token_loss: per_tok_loss}"),
        [(22, 49, "metrics.icl.inputs.per_token_loss", "did you mean 'per_token_loss'")],
    ),
    (
        "unknown-input-param",
        _edit("inputs: {series: induction}", "inputs: {serie: induction}"),
        [(23, 46, "metrics.transition.inputs.serie", "has no input 'serie'")],
    ),
    (
        "unknown-metric-arg",
        _edit("args: {early: 1, late: 10}", "args: {early: 1, lat: 10}"),
        [(22, 83, "metrics.icl.args.lat", "did you mean 'late'")],
    ),
    (
        "wrong-arg-type",
        _edit("args: {early: 1, late: 10}", "args: {early: 1, late: ten}"),
        [(22, 89, "metrics.icl.args.late", "valid integer")],
    ),
    (
        "missing-prompts",
        _edit("loss: {fn: loss, prompts: rep}", "loss: {fn: loss}"),
        [(19, 3, "metrics.loss", "reads prompts")],
    ),
    (
        "missing-input",
        _edit(
            "icl: {fn: icl_score, inputs: {per_token_loss: per_token_loss}, args: {early: 1, late: 10}}",
            "icl: {fn: icl_score, args: {early: 1, late: 10}}",
        ),
        [(22, 3, "metrics.icl", "needs input 'per_token_loss'")],
    ),
    (
        "duplicate-key",
        _edit(
            "  loss: {fn: loss, prompts: rep}\n",
            "  loss: {fn: loss, prompts: rep}\n  loss: {fn: accuracy, prompts: rep}\n",
        ),
        [(20, 3, "metrics.loss", "duplicate key 'loss' (first defined on line 19)")],
    ),
    (
        "unsafe-tag",
        _edit("name: tiny", "name: !!python/object/apply:os.system [ls]"),
        [(2, 7, "name", "not allowed")],
    ),
    ("bad-yaml", _edit("    seeds: [0]", "    seeds: [0"), [(12, 16, "", "invalid YAML")]),
    ("tab-indent", _edit("    seeds: [0]", "\tseeds: [0]"), [(11, 1, "", "invalid YAML")]),
    (
        "wrong-version",
        _edit("mispec: 1", "mispec: 2"),
        [(1, 9, "mispec", "unsupported spec format 2")],
    ),
    ("missing-version", _edit("mispec: 1\n", ""), [(1, 1, "", "missing `mispec: 1`")]),
    (
        "bad-name",
        _edit("name: tiny", "name: 'has space'"),
        [(2, 7, "name", "should match pattern")],
    ),
    (
        "no-metrics",
        TOY_SPEC.split("metrics:")[0] + "metrics: {}\n",
        [(18, 10, "metrics", "at least 1 item")],
    ),
    (
        "two-sources",
        _edit("    seeds: [0]", "    path: ./ckpts\n    seeds: [0]"),
        [(4, 3, "models.toy", "exactly one source")],
    ),
    (
        "no-source",
        _edit("    seeds: [0]", "    seeds: [0]").replace(
            TOY_SPEC[TOY_SPEC.index("    train:") : TOY_SPEC.index("    seeds:")], ""
        ),
        [(4, 3, "models.toy", "exactly one source")],
    ),
    (
        "repeated-seeds",
        _edit("seeds: [0]", "seeds: [0, 0]"),
        [(4, 3, "models.toy", "seeds are repeated")],
    ),
    (
        "bad-selector",
        _edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: {stepz: [0, 20]}"),
        [(12, 18, "models.toy.checkpoints", "expected 'all', 'last'")],
    ),
    (
        "selector-step-missing",
        _edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: {steps: [0, 20, 41]}"),
        [(12, 18, "models.toy.checkpoints", "step 41 is not available; nearest: [38, 39, 40]")],
    ),
    (
        "selector-count-zero",
        _edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: {schedule: log, count: 0}"),
        [(12, 41, "models.toy.checkpoints.count", "greater than 0")],
    ),
    (
        "selector-count-too-big",
        _edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: {schedule: log, count: 100}"),
        [(12, 18, "models.toy.checkpoints", "asks for 100 checkpoints but only 41 exist")],
    ),
    (
        "selector-range-reversed",
        _edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: {start: 30, stop: 10, every: 5}"),
        [(12, 18, "models.toy.checkpoints", "stop (10) is before start (30)")],
    ),
    (
        "selector-every-zero",
        _edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: {every: 0}"),
        [(12, 26, "models.toy.checkpoints.every", "greater than 0")],
    ),
    (
        "selector-bad-name",
        _edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: everything"),
        [(12, 18, "models.toy.checkpoints", "Input should be 'all' or 'last'")],
    ),
    (
        "negative-step",
        _edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: {steps: [-1, 20]}"),
        [(12, 27, "models.toy.checkpoints.steps[0]", "greater than or equal to 0")],
    ),
    (
        "cycle",
        _edit(
            "  transition: {fn: transition_step, inputs: {series: induction}}",
            "  transition: {fn: transition_step, inputs: {series: induction}}\n"
            "  a: {fn: icl_score, inputs: {per_token_loss: b}, args: {early: 1, late: 2}}\n"
            "  b: {fn: icl_score, inputs: {per_token_loss: a}, args: {early: 1, late: 2}}",
        ),
        [(24, 30, "metrics.a.inputs", "cycle: a -> b -> a")],
    ),
    (
        "unknown-optimizer",
        _edit("batch_size: 16", "batch_size: 16\n      optimizer: {name: adamx}"),
        [(11, 25, "models.toy.train.optimizer.name", "'adamw', 'adam' or 'sgd'")],
    ),
    (
        "unknown-metric-model",
        _edit("loss: {fn: loss, prompts: rep}", "loss: {fn: loss, prompts: rep, models: [toi]}"),
        [(19, 43, "metrics.loss.models[0]", "did you mean 'toy'")],
    ),
    (
        "prompts-on-weights-metric",
        TOY_SPEC + "  kc: {fn: composition_score, prompts: rep}\n",
        [(24, 40, "metrics.kc.prompts", "reads no prompts")],
    ),
    ("not-a-mapping", "- a\n- b\n", [(1, 1, "", "must be a mapping")]),
]


@pytest.mark.parametrize("case_id,text,expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_points_at_the_cause(write_spec, case_id, text, expected):
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    problems = info.value.problems
    got = [(p.line, p.col, p.key_path, p.message) for p in problems]
    for line, col, key, fragment in expected:
        assert any(
            g[0] == line and g[1] == col and g[2] == key and fragment in g[3] for g in got
        ), f"expected {line}:{col} {key}: ...{fragment}...; got {got}"
    for p in problems:
        assert str(p).startswith(f"{path}:"), str(p)


def test_several_problems_are_reported_together(write_spec):
    text = _edit("fn: induction_score", "fn: induction_scor").replace("steps: 40", "steps: -1")
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert len(info.value.problems) == 1  # structure first: the negative step stops checks
    text = _edit("fn: induction_score", "fn: induction_scor").replace(
        "prompts: rep}", "prompts: rp}", 1
    )
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    keys = {p.key_path for p in info.value.problems}
    assert keys == {"metrics.induction.fn", "metrics.loss.prompts"}


def test_include_merges_and_reports_in_the_included_file(write_spec):
    write_spec(TOY_SPEC.replace("fn: induction_score", "fn: induction_scor"), "base.yaml")
    main = write_spec(
        "mispec: 1\nname: child\ninclude: [base.yaml]\n"
        "metrics:\n  induction: {fn: induction_score, prompts: rep}\n",
        "child.yaml",
    )
    loaded = load_spec(main)  # the child overrides the broken metric
    assert loaded.spec.name == "child"
    assert loaded.spec.metrics["induction"].fn == "induction_score"
    assert set(loaded.spec.metrics) >= {"loss", "icl", "transition"}
    main2 = write_spec("mispec: 1\nname: child\ninclude: [base.yaml]\n", "child2.yaml")
    with pytest.raises(SpecError) as info:
        load_spec(main2)
    (p,) = info.value.problems
    assert p.file.endswith("base.yaml") and (p.line, p.col) == (21, 19)


def test_include_missing_and_cycle(write_spec):
    a = write_spec("mispec: 1\nname: a\ninclude: [nope.yaml]\n", "a.yaml")
    with pytest.raises(SpecError, match=r"a.yaml:3:11: include\[0\]: included file not found"):
        load_spec(a)
    write_spec("mispec: 1\nname: x\ninclude: [y.yaml]\n", "x.yaml")
    y = write_spec("mispec: 1\nname: y\ninclude: [x.yaml]\n", "y.yaml")
    with pytest.raises(SpecError, match="include cycle"):
        load_spec(y)


def test_missing_file_names_the_resolved_path(tmp_path):
    with pytest.raises(SpecError, match=str(tmp_path / "absent.yaml")):
        load_spec(tmp_path / "absent.yaml")
