"""What ``validate`` refuses before any compute (issue 14, items 1, 14 and 15): each problem
exits 2 at ``file:line:col`` with a message naming the cause, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mispec.errors import SpecError
from mispec.validation.load import load_spec
from tests.conftest import TOY_SPEC
from tests.reliability_helpers import cli

# Every dim of the results and every coordinate the assembly adds (written out, not imported,
# so that the test does not depend on the code it checks).
TAKEN_NAMES = [
    "model", "seed", "step", "layer", "head", "pos", "batch", "neuron", "component", "freq",
    "src_layer", "src_head", "dst_layer", "dst_head", "pc", "mode", "split", "digit",
    "tokens_seen",
]  # fmt: skip


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_a_metric_named_like_a_dim_exits_2_at_its_key_and_writes_nothing(write_spec):
    spec = write_spec(
        TOY_SPEC.replace("  loss: {fn: loss, prompts: rep}", "  layer: {fn: loss, prompts: rep}")
    )
    before = _files(spec.parent)
    res = cli("validate", str(spec), cwd=spec.parent, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{spec.name}:19:3" in res.stderr, res.stderr
    assert "cannot be named 'layer'" in res.stderr and "e.g. 'loss'" in res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert _files(spec.parent) == before


@pytest.mark.parametrize("name", TAKEN_NAMES)
def test_every_dim_and_coordinate_name_is_refused(name, write_spec):
    spec = write_spec(
        TOY_SPEC.replace(
            "  loss: {fn: loss, prompts: rep}", f"  {name}: {{fn: loss, prompts: rep}}"
        )
    )
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    [problem] = [p for p in err.value.problems if p.path == ("metrics", name)]
    assert (problem.line, problem.col) == (19, 3)
    assert f"cannot be named '{name}'" in problem.message


# ----------------------------------------------------------------------------- item 15: types
@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("steps: 40", "steps: true", "models.toy.train.steps"),
        ("steps: 40", 'steps: "40"', "models.toy.train.steps"),
        ("seeds: [0]", "seeds: [true]", "models.toy.seeds.0"),
        ("attn_only: true", "attn_only: 1", "models.toy.train.arch.attn_only"),
        ("mispec: 1", "mispec: true", "mispec"),
        ("seed: 1", "seed: false", "prompts.rep.seed"),
        ("args: {early: 1, late: 10}", "args: {early: true, late: 10}", "metrics.icl.args.early"),
        ("args: {early: 1, late: 10}", 'args: {early: "1", late: 10}', "metrics.icl.args.early"),
    ],
)
def test_booleans_and_strings_are_not_coerced_to_numbers(old, new, where, write_spec):
    assert old in TOY_SPEC
    spec = write_spec(TOY_SPEC.replace(old, new, 1))
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    paths = [".".join(map(str, p.path)) for p in err.value.problems]
    assert where in paths, err.value


def test_integers_stay_allowed_where_floats_are_expected(write_spec):
    spec = write_spec(
        TOY_SPEC.replace(
            "      batch_size: 16",
            "      batch_size: 16\n      optimizer: {lr: 1, betas: [0, 0.5]}\n      grad_clip: 1",
        )
    )
    train = load_spec(spec).spec.models["toy"].train
    assert train.optimizer.lr == 1.0 and train.optimizer.betas == (0.0, 0.5)
    assert train.grad_clip == 1.0


def test_exponent_floats_without_a_dot_are_numbers(write_spec):
    """`lr: 1e-5` is a float in YAML 1.2 (PyYAML's YAML 1.1 reads a string): strict types must
    not refuse what a researcher writes every day; a quoted "1e-5" stays a string."""
    spec = write_spec(
        TOY_SPEC.replace(
            "      batch_size: 16", "      batch_size: 16\n      optimizer: {lr: 1e-5}"
        )
    )
    assert load_spec(spec).spec.models["toy"].train.optimizer.lr == 1e-5
    quoted = write_spec(
        TOY_SPEC.replace(
            "      batch_size: 16", '      batch_size: 16\n      optimizer: {lr: "1e-5"}'
        )
    )
    with pytest.raises(SpecError, match="optimizer.lr"):
        load_spec(quoted)


# ----------------------------------------------------------------------------- item 15: cache
def test_an_unknown_hook_under_cache_is_refused_with_did_you_mean(write_spec):
    spec = write_spec(TOY_SPEC + "cache:\n  blocks.{layer}.attn.hook_patern: float16\n")
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    [problem] = err.value.problems
    assert problem.path == ("cache", "blocks.{layer}.attn.hook_patern")
    assert (problem.line, problem.col) == (25, 3)
    assert "did you mean 'blocks.{layer}.attn.hook_pattern'" in problem.message


@pytest.mark.parametrize(
    "hook", ["blocks.{layer}.attn.hook_pattern", "blocks.1.hook_resid_post", "next_logprob"]
)
def test_hooks_read_by_metrics_and_transformerlens_hooks_are_allowed_under_cache(hook, write_spec):
    spec = write_spec(TOY_SPEC + f"cache:\n  {hook}: skip\n")
    assert load_spec(spec).spec.cache == {hook: "skip"}


# ----------------------------------------------------------------------------- item 15: steps
@pytest.mark.parametrize(
    ("names", "is_dir"),
    [
        (["model_6.safetensors", "model_06.safetensors"], False),
        (["model_6.pt", "model_6.safetensors"], False),
        (["step6", "checkpoint-6"], True),
    ],
)
def test_two_checkpoints_of_one_step_in_a_local_folder_are_an_error(names, is_dir, write_spec):
    folder = write_spec("{}", "unused.yaml").parent / "ckpts"
    folder.mkdir()
    for name in names:
        if is_dir:
            (folder / name).mkdir()
            (folder / name / "config.json").write_text('{"model_type": "gpt2"}')
        else:
            (folder / name).write_bytes(b"")
    if not is_dir:
        (folder / "config.json").write_text('{"d_model": 8}')
    spec = write_spec(
        "mispec: 1\nname: amb\nmodels:\n  m: {path: ckpts}\nmetrics:\n  norm: {fn: weight_norm}\n"
    )
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    message = str(err.value)
    assert "both step 6" in message, message
    assert all(f"'{n}'" in message for n in names), message
    assert f"{spec.name}:4:" in message


# ----------------------------------------------------------------------------- item 15: files
def _validate(capsys, *argv: str) -> tuple[int, str]:
    from mispec.cli.main import main

    rc = main(["validate", *argv])
    return rc, capsys.readouterr().err


def _clean(err: str) -> None:
    assert "internal error" not in err and "Traceback" not in err, err


def test_raw_control_bytes_in_a_spec_are_located(write_spec, capsys):
    spec = write_spec(TOY_SPEC.replace("name: tiny", 'name: "ti\x01ny"'))
    rc, err = _validate(capsys, str(spec))
    assert rc == 2
    _clean(err)
    assert f"{spec.name}:2:10: control character 0x0001" in err, err


def test_a_5000_digit_integer_is_located(write_spec, capsys):
    spec = write_spec(TOY_SPEC.replace("seeds: [0]", "seeds: [" + "9" * 5000 + "]"))
    rc, err = _validate(capsys, str(spec))
    assert rc == 2
    _clean(err)
    assert f"{spec.name}:11:13: models.toy.seeds[0]: invalid value: a number of 5000 digits" in err


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_fifo_or_a_device_as_the_spec_is_refused_without_hanging(kind, tmp_path):
    import os

    if kind == "fifo":
        target = tmp_path / "spec.yaml"
        os.mkfifo(target)
    else:
        target = Path(kind)
    res = cli("validate", str(target), cwd=tmp_path, timeout=60)
    assert res.returncode == 2, res.stderr
    assert f"not a regular file: {target}" in res.stderr
    _clean(res.stderr)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("sub", "include names a folder, not a spec file"),
        ("/dev/null", "include names a device or a pipe"),
    ],
)
def test_include_of_a_folder_or_a_device_says_what_it_is(target, message, write_spec, capsys):
    spec = write_spec("mispec: 1\ninclude: [" + target + "]\n" + TOY_SPEC.split("\n", 1)[1])
    (spec.parent / "sub").mkdir()
    rc, err = _validate(capsys, str(spec))
    assert rc == 2
    assert f"{spec.name}:2:11: include[0]: {message}" in err, err
    assert "not found" not in err


def test_a_store_that_is_a_file_is_named_as_such(toy_spec, tmp_path, capsys, monkeypatch):
    from mispec.cli.main import main

    store = tmp_path / "store-file"
    store.write_text("x")
    monkeypatch.setenv("MISPEC_STORE", str(store))
    for argv in (["plan", str(toy_spec)], ["ls"]):
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2, err
        assert f"the store {store} (from MISPEC_STORE={store}) is a file, not a folder" in err
    assert store.read_text() == "x"


# ----------------------------------------------------------------------------- item 15: plot args
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "RUN", "loss", "-o", "DIR"], "is a folder; name the figure file"),
        (["plot", "RUN", "loss", "-o", "x.txt"], "a figure is written as .png"),
        (["plot", "RUN", "loss", "-o", "noext"], "a figure is written as .png"),
        (["report", "RUN", "-o", "DIR"], "is a folder; name the report file"),
        (["report", "RUN", "-o", "x.txt"], "a report is written as .html"),
        (["plot", "RUN", "induction", "--steps", "abc"], "expected comma-separated step numbers"),
    ],
)
def test_bad_plot_and_report_arguments_exit_2_before_reading_results(
    argv, message, tmp_path, capsys, monkeypatch
):
    from mispec.cli.main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "DIR").mkdir()
    argv = [str(tmp_path / "no-run") if a == "RUN" else a for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse refuses a malformed option value
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err, err
    assert "no-run" not in err  # refused before looking for the run folder
    _clean(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR"]


# ----------------------------------------------------------------------------- item 15: run folders
@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("provenance.json", "{not json", "JSONDecodeError"),
        ("provenance.json", "[1, 2]", "not a JSON object"),
        ("provenance.json", '{"spec_path": 5}', "'spec_path' is int, not a string"),
        ("plan.json", "{not json", "JSONDecodeError"),
        ("plan.json", '"x"', "not a JSON object"),
    ],
)
@pytest.mark.parametrize("verb", ["diff", "report"])
def test_a_damaged_run_folder_is_refused_by_diff_and_report(
    name, text, why, verb, toy_spec, tmp_path, capsys
):
    from mispec.cli.main import main

    run = tmp_path / "runs" / "tiny"
    (run / "results.zarr").mkdir(parents=True)
    (run / "spec.yaml").write_text(toy_spec.read_text())
    (run / name).write_text(text)
    argv = ["diff", str(toy_spec), str(run)] if verb == "diff" else ["report", str(run)]
    rc = main([*argv, "-o", str(tmp_path / "r.html")] if verb == "report" else argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"{run / name} is damaged ({why}" in err, err
    _clean(err)


# ----------------------------------------------------------------------------- item 14: acts + bridge
def test_a_metric_taking_acts_and_bridge_is_refused_when_decorated():
    from mispec.metrics.core import metric

    def both(acts, bridge, prompts):
        return 0.0

    with pytest.raises(TypeError, match="takes both 'acts' and 'bridge'"):
        metric(dims=(), hooks=("next_logprob",), register=False)(both)


def test_a_plugin_taking_acts_and_bridge_fails_validate_at_its_fn(write_spec):
    spec = write_spec(TOY_SPEC + '  both: {fn: "both_plugin:both", prompts: rep}\n')
    (spec.parent / "both_plugin.py").write_text(
        "from mispec.metrics.core import metric\n\n\n"
        "@metric(dims=(), hooks=('next_logprob',))\n"
        "def both(acts, bridge, prompts):\n"
        "    return 0.0\n"
    )
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    [problem] = err.value.problems
    assert problem.path == ("metrics", "both", "fn")
    assert "takes both 'acts' and 'bridge'" in problem.message


# ----------------------------------------------------------------------------- item 14: tokenizer
def _text_spec(extra_model: str = "") -> str:
    spec = TOY_SPEC.replace("    seeds: [0]\n", f"    seeds: [0]\n{extra_model}", 1)
    spec = spec.replace("metrics:\n", "  text: {file: prompts.txt}\nmetrics:\n", 1)
    return spec + "  text_loss: {fn: loss, prompts: text}\n"


def test_text_prompts_for_a_model_without_a_tokenizer_fail_validate(write_spec, capsys):
    spec = write_spec(_text_spec())
    (spec.parent / "prompts.txt").write_text("hello world\n")
    rc, err = _validate(capsys, str(spec))
    assert rc == 2
    assert f"{spec.name}:18:16: prompts.text.file: prompt set 'text' is text" in err, err
    assert "model 'toy' has no tokenizer" in err
    _clean(err)


def test_text_prompts_for_a_model_with_a_tokenizer_folder_validate(write_spec):
    spec = write_spec(_text_spec("    tokenizer: tok\n"))
    (spec.parent / "prompts.txt").write_text("hello world\n")
    (spec.parent / "tok").mkdir()
    load_spec(spec)


# ----------------------------------------------------------------------------- item 14: jsonl
def test_an_unknown_jsonl_field_is_named_with_its_line(write_spec, capsys):
    spec = write_spec(_text_spec("    tokenizer: tok\n").replace("prompts.txt", "prompts.jsonl"))
    (spec.parent / "tok").mkdir()
    (spec.parent / "prompts.jsonl").write_text(
        '{"text": "a b"}\n\n{"text": "c d", "label": " e"}\n'
    )
    rc, err = _validate(capsys, str(spec))
    assert rc == 2
    assert f"{spec.parent / 'prompts.jsonl'}:3:1: prompts.text: unknown field 'label'" in err
    _clean(err)
    (spec.parent / "prompts.jsonl").write_text('{"text": "a b"}\n{"text": "c d"}\n')
    assert _validate(capsys, str(spec))[0] == 0


# ----------------------------------------------------------------------------- item 14: extras
IOI_SET = "  ioi:\n    generator: toy_ioi\n    args: {n: 8}\n"


def _problems(spec: Path) -> dict[str, str]:
    try:
        load_spec(spec)
    except SpecError as err:
        return {".".join(map(str, p.path)): p.message for p in err.problems}
    return {}


@pytest.mark.parametrize(
    ("metric", "where", "fragment"),
    [
        ("{fn: logit_diff, prompts: rep}", "metrics.m.prompts", "'answer', 'wrong_answer'"),
        ("{fn: activation_patching, prompts: rep}", "metrics.m.prompts", "'corrupt_tokens'"),
        ("{fn: loss, prompts: rep, args: {mask: answer}}", "metrics.m.prompts", "'answer'"),
        ("{fn: loss, prompts: rep, args: {split: test}}", "metrics.m.prompts", "'train_mask'"),
        (
            "{fn: head_ablation, prompts: rep, args: {measure: logit_diff}}",
            "metrics.m.prompts",
            "'answer', 'wrong_answer'",
        ),
        ("{fn: logit_diff, prompts: ioi}", "metrics.m", "answers before the last position"),
    ],
)
def test_prompt_extras_a_metric_reads_are_checked_at_validate(metric, where, fragment, write_spec):
    spec = write_spec(
        TOY_SPEC.replace("metrics:\n", IOI_SET + "metrics:\n", 1) + f"  m: {metric}\n"
    )
    problems = _problems(spec)
    assert where in problems, problems
    assert fragment in problems[where]


@pytest.mark.parametrize(
    "metric",
    [
        "{fn: logit_diff, prompts: ioi, args: {position: answer_pos}}",
        "{fn: loss, prompts: rep, args: {mask: loss_mask}}",
        "{fn: activation_patching, prompts: ioi}",
    ],
)
def test_prompt_sets_with_the_extras_pass(metric, write_spec):
    spec = write_spec(
        TOY_SPEC.replace("metrics:\n", IOI_SET + "metrics:\n", 1) + f"  m: {metric}\n"
    )
    problems = _problems(spec)
    assert not [k for k in problems if k.startswith("metrics.m")], problems


# ----------------------------------------------------------------------------- item 15: ls
def test_ls_skips_wrong_typed_run_records_with_a_warning(tmp_path, capsys):
    from mispec.cli.main import main

    store = tmp_path / "store"
    store.mkdir()
    good = '{"time": "T", "run_id": "R", "study": "S", "run_dir": "D"}'
    (store / "runs.jsonl").write_text(f'[1, 2]\n"x"\n{{"run_id": "partial"}}\n{good}\n')
    with pytest.warns(UserWarning, match=r"skipped 3 unreadable line\(s\) \(line 1, 2, 3\)"):
        assert main(["ls", "--store", str(store)]) == 0  # lines 1-3 are not run records
    out, _err = capsys.readouterr()
    assert [line.split() for line in out.splitlines()] == [["T", "R", "S", "D"]]


def test_a_text_prompt_set_has_only_its_masks_as_extras(write_spec):
    spec = write_spec(
        _text_spec("    tokenizer: tok\n")
        + "  ld: {fn: logit_diff, prompts: text}\n"
        + "  masked: {fn: loss, prompts: text, args: {mask: loss_mask}}\n"
    )
    (spec.parent / "prompts.txt").write_text("hello world\n")
    (spec.parent / "tok").mkdir()
    problems = _problems(spec)
    assert list(problems) == ["metrics.ld.prompts"], problems
    assert (
        "(it has: attention_mask, loss_mask, token_strings, word_start)"
        in problems["metrics.ld.prompts"]
    )
