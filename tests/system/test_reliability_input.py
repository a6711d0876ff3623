"""Bad input at the command line: every case exits with code 2, names the cause (at
``file:line:col`` where there is a location; the resolved absolute path for missing files
and folders), prints no traceback, and writes NOTHING — for ``run`` as for ``validate`` and
``plan``.

``run`` is a real subprocess (``python -m mispec.cli.main run``), the cases in parallel;
``validate`` and ``plan`` go through the same CLI entry point in-process (``main(argv)``),
which keeps the corpus fast. tests/unit/test_spec_errors.py covers the library-level positions;
this corpus is about what a user sees and what is left on disk.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mispec.cli.main import main
from tests.conftest import TOY_SPEC
from tests.reliability_helpers import (
    REPO,
    cli,
    new_project,
    reference_run,
    snapshot,
    snapshot_diff,
)

SPEC = "spec.yaml"
TRAIN = TOY_SPEC[TOY_SPEC.index("    train:") : TOY_SPEC.index("    seeds:")]


def edit(old: str, new: str, base: str = TOY_SPEC) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def path_model(path: str, extra: str = "") -> str:
    """TOY_SPEC with its trained model replaced by a local folder of checkpoints."""
    return TOY_SPEC.replace(TRAIN, f"    path: {path}\n{extra}")


FAKE_CKPTS = {  # a folder that lists as a state-dict checkpoint series (steps 0 and 20)
    "ckpts/model_0.safetensors": "x",
    "ckpts/model_20.safetensors": "x",
    "ckpts/config.json": "{}",
}
LAUGHS = "mispec: 1\nname: tiny\nlol0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"lol{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
)


@dataclass
class Case:
    id: str
    text: str | bytes | None  # the spec.yaml (None: no spec file)
    expect: list[str]  # fragments of stderr; "{dir}" is the project folder
    at: tuple[int, int] | None  # line, col of spec.yaml the message points at
    verbs: tuple[str, ...] = ("validate", "plan", "run")
    files: dict[str, str] = field(default_factory=dict)
    argv: list[str] | None = None  # instead of `VERB spec.yaml`; "{dir}" is the project


CASES = [
    # ------------------------------------------------------------ malformed YAML, files
    Case(
        "yaml-unclosed-flow-mapping",
        edit("args: {n: 8, vocab: 16, half_len: 6}", "args: {n: 8, vocab: 16, half_len: 6"),
        ["invalid YAML", "while parsing a flow mapping"],
        (17, 9),
    ),
    Case(
        "yaml-bad-indentation",
        edit("name: tiny", "name: tiny\n  bogus: 1"),
        ["invalid YAML"],
        (3, 8),
    ),
    Case(
        "yaml-two-documents",
        TOY_SPEC + "---\nmispec: 1\n",
        ["invalid YAML", "expected a single document"],
        (24, 1),
    ),
    Case("yaml-empty-file", "", ["the file is empty", "mispec: 1"], None),
    Case("yaml-comments-only", "# a study, some day\n", ["the file is empty"], None),
    Case("yaml-not-utf8", b"mispec: 1\nname: \xff\xfe\n", ["not UTF-8"], None),
    Case(
        "yaml-alias-bomb",
        LAUGHS + "models: {}\nmetrics: {}\n",
        ["expands to more than 100000 values"],
        None,
    ),
    Case(
        "yaml-recursive-alias",
        edit("name: tiny", "name: tiny\ndescription: &d [*d]"),
        ["alias refers to the value that contains it"],
        (3, 14),
    ),
    Case(
        "yaml-nested-too-deeply",
        edit("name: tiny", "name: tiny\ndescription: " + "[" * 5000 + "]" * 5000),
        ["nested too deeply"],
        None,
    ),
    Case(
        "yaml-duplicate-model",
        edit("prompts:\n", "  toy: {path: ./elsewhere}\nprompts:\n"),
        ["duplicate key 'toy' (first defined on line 4)"],
        (13, 3),
    ),
    Case(
        "yaml-non-scalar-key", TOY_SPEC + "? [a, b]\n: 1\n", ["mapping keys must be plain"], (24, 3)
    ),
    Case(
        "spec-file-missing",
        None,
        ["spec file not found: {dir}/absent.yaml"],
        None,
        argv=["{verb}", "{dir}/absent.yaml"],
    ),
    Case(
        "spec-is-a-folder",
        None,
        ["expected a YAML file, got a directory: {dir}/studies"],
        None,
        files={"studies/README": "x"},
        argv=["{verb}", "{dir}/studies"],
    ),
    Case(
        "spec-absurdly-large-file",
        TOY_SPEC + "# " + "x" * (9 << 20) + "\n",
        ["bytes; a spec is small"],
        None,
    ),
    # ------------------------------------------------------------ unsafe YAML tags
    Case(
        "tag-python-object-apply",
        edit(
            "args: {early: 1, late: 10}",
            'args: !!python/object/apply:os.system ["touch {dir}/pwned"]',
        ),
        ["YAML tag '!!python/object/apply:os.system' is not allowed"],
        (22, 72),
    ),
    Case(
        "tag-python-name",
        edit("  loss: {fn: loss, prompts: rep}", "  loss:\n    fn: !!python/name:os.system\n"),
        ["YAML tag '!!python/name:os.system' is not allowed"],
        (20, 9),
    ),
    Case(
        "tag-custom-include",
        edit("name: tiny", "name: !include other.yaml"),
        ["YAML tag '!include' is not allowed"],
        (2, 7),
    ),
    # ------------------------------------------------------------ wrong types
    Case(
        "models-is-a-list",
        edit("models:\n  toy:", "models:\n  - toy:"),
        ["models: Input should be a valid dictionary"],
        (3, 1),
    ),
    Case(
        "metric-is-a-string",
        edit("  loss: {fn: loss, prompts: rep}", "  loss: loss"),
        ["metrics.loss: Input should be a valid dictionary"],
        (19, 9),
    ),
    Case("seeds-not-numbers", edit("seeds: [0]", "seeds: [zero]"), ["valid integer"], (11, 13)),
    Case(
        "checkpoints-a-number",
        edit("checkpoints: {steps: [0, 20, 40]}", "checkpoints: 5"),
        ["expected 'all', 'last', {steps: [...]}"],
        (12, 18),
    ),
    Case(
        "attn-only-not-a-bool",
        edit("attn_only: true", "attn_only: maybe"),
        ["valid boolean"],
        (8, 74),
    ),
    Case(
        "format-version-a-string",
        edit("mispec: 1", "mispec: one"),
        ["unsupported spec format 'one'"],
        (1, 9),
    ),
    # ------------------------------------------------------------ unknown keys and names
    Case(
        "unknown-prompt-key",
        edit("    generator: repeated_tokens", "    genrator: repeated_tokens"),
        ["unknown key 'genrator' (did you mean 'generator'?)"],
        (15, 5),
    ),
    Case(
        "unknown-plugin-module",
        edit("fn: induction_score", "fn: no_such_plugin_mod:score"),
        ["cannot import plugin module 'no_such_plugin_mod'"],
        (21, 19),
    ),
    Case(
        "plugin-function-missing",
        edit("fn: induction_score", "fn: json:no_such_function"),
        ["plugin module 'json' has no attribute 'no_such_function'"],
        (21, 19),
    ),
    Case(
        "plugin-not-a-metric",
        edit("fn: induction_score", "fn: json:dumps"),
        ["'json:dumps' is not a mispec metric"],
        (21, 19),
    ),
    Case(
        "plugin-raises-on-import",
        edit("fn: induction_score", "fn: boom_plugin:score"),
        ["importing the plugin 'boom_plugin:score' failed: RuntimeError: plugin exploded"],
        (21, 19),
        files={"boom_plugin.py": "raise RuntimeError('plugin exploded')\n"},
    ),
    Case(
        "plugin-syntax-error",
        edit("fn: induction_score", "fn: broken_plugin:score"),
        ["importing the plugin 'broken_plugin:score' failed: SyntaxError"],
        (21, 19),
        files={"broken_plugin.py": "def score(:\n"},
    ),
    Case(
        "task-argument-out-of-range",
        edit("task_args: {vocab: 16", "task_args: {vocab: 1"),
        ["task argument 'vocab' must be an integer >= 3, got 1"],
        (7, 18),
    ),
    Case(
        "unknown-normalization",
        edit("attn_only: true}", "attn_only: true, normalization: BatchNorm}"),
        ["normalization: Input should be 'LN', 'LNPre', 'RMS' or 'RMSPre'"],
        (8, 95),
    ),
    Case(
        "unknown-prompt-set",
        edit(
            "induction: {fn: induction_score, prompts: rep}",
            "induction: {fn: induction_score, prompts: rpe}",
        ),
        ["unknown prompt set 'rpe' (did you mean 'rep'?)"],
        (21, 45),
    ),
    # ------------------------------------------------------------ empty sections
    Case(
        "models-empty",
        TOY_SPEC.partition("models:")[0]
        + "models: {}\nprompts:\n"
        + TOY_SPEC.partition("prompts:\n")[2],
        ["models: Dictionary should have at least 1 item"],
        (3, 9),
    ),
    Case(
        "metrics-empty",
        TOY_SPEC.split("metrics:")[0] + "metrics:\n",
        ["metrics: Input should be a valid dictionary"],
        (18, 9),
    ),
    Case(
        "prompts-empty-but-read",
        TOY_SPEC.partition("prompts:\n")[0]
        + "prompts: {}\nmetrics:"
        + TOY_SPEC.partition("metrics:")[2],
        ["unknown prompt set 'rep'"],
        (15, 29),
    ),
    Case(
        "model-without-source",
        path_model("").replace("    path: \n", ""),
        ["needs exactly one source: 'train', 'pretrained' or 'path'"],
        (4, 3),
    ),
    # ------------------------------------------------------------ cycles
    Case(
        "metric-reads-itself",
        edit("inputs: {per_token_loss: per_token_loss}", "inputs: {per_token_loss: icl}"),
        ["a metric cannot read itself"],
        (22, 49),
    ),
    Case(
        "metric-cycle-of-three",
        TOY_SPEC
        + "  a: {fn: reduce, inputs: {x: c}, args: {over: []}}\n"
        + "  b: {fn: reduce, inputs: {x: a}, args: {over: []}}\n"
        + "  c: {fn: reduce, inputs: {x: b}, args: {over: []}}\n",
        ["metric inputs form a cycle: a -> c -> b -> a"],
        (24, 27),
    ),
    Case(
        "include-itself",
        edit("name: tiny", "name: tiny\ninclude: [spec.yaml]"),
        ["include cycle through {dir}/spec.yaml"],
        (3, 11),
    ),
    # ------------------------------------------------------------ dims a metric cannot take
    Case(
        "icl-fed-induction-scores",
        edit("inputs: {per_token_loss: per_token_loss}", "inputs: {per_token_loss: induction}"),
        [
            "icl_score needs per-token values (a 'pos' dim",
            "'induction' (induction_score) has dims (layer, head)",
        ],
        (22, 49),
    ),
    Case(
        "icl-fed-pca-over-steps",
        edit("inputs: {per_token_loss: per_token_loss}", "inputs: {per_token_loss: pca}")
        + "  pca: {fn: pca_over_steps, inputs: {series: per_token_loss}}\n",
        ["icl_score needs per-token values", "has dims (step, pc)"],
        (22, 49),
    ),
    Case(
        "reduce-over-a-missing-dim",
        TOY_SPEC + "  top: {fn: reduce, inputs: {x: induction}, args: {over: [neuron]}}\n",
        ["'induction' has no dims ['neuron'] to reduce over (its dims: (layer, head))"],
        (24, 58),
    ),
    Case(
        "transition-of-a-transition",
        TOY_SPEC + "  again: {fn: transition_step, inputs: {series: transition}}\n",
        ["reduces over the step axis, but 'transition' has none"],
        (24, 49),
    ),
    # ------------------------------------------------------------ impossible selectors
    Case(
        "selector-step-not-available",
        edit("{steps: [0, 20, 40]}", "{steps: [0, 20, 45]}"),
        ["step 45 is not available; nearest: [38, 39, 40]"],
        (12, 18),
    ),
    Case(
        "selector-starts-after-last-step",
        edit("{steps: [0, 20, 40]}", "{start: 100, every: 5}"),
        ["start 100 is after the last step 40"],
        (12, 18),
    ),
    Case(
        "selector-count-zero",
        edit("{steps: [0, 20, 40]}", "{schedule: linear, count: 0}"),
        ["count: Input should be greater than 0"],
        (12, 44),
    ),
    Case(
        "path-selector-step-not-in-folder",
        path_model("ckpts"),
        ["step 40 is not available; nearest: [0, 20]"],
        (7, 18),
        files=FAKE_CKPTS,
    ),
    Case(
        "path-selector-more-than-available",
        edit("{steps: [0, 20, 40]}", "{schedule: log, count: 5}", path_model("ckpts")),
        ["asks for 5 checkpoints but only 2 exist"],
        (7, 18),
        files=FAKE_CKPTS,
    ),
    # ------------------------------------------------------------ negative or zero sizes
    Case(
        "batch-size-negative",
        edit("batch_size: 16", "batch_size: -16"),
        ["greater than 0"],
        (10, 19),
    ),
    Case("d-head-zero", edit("d_head: 8", "d_head: 0"), ["greater than 0"], (8, 60)),
    Case(
        "prompt-count-zero",
        edit("{n: 8, vocab: 16", "{n: 0, vocab: 16"),
        ["a prompt set needs between 1 and 1000000 prompts, got n = 0"],
        (16, 15),
    ),
    Case(
        "prompt-half-len-negative",
        edit("vocab: 16, half_len: 6}\n    seed", "vocab: 16, half_len: -6}\n    seed"),
        [
            "generator 'repeated_tokens' cannot build this prompt set",
            "'half_len' must be an integer >= 1",
        ],
        (16, 11),
    ),
    Case(
        "seed-negative", edit("seeds: [0]", "seeds: [-1]"), ["greater than or equal to 0"], (11, 13)
    ),
    Case(
        "learning-rate-negative",
        edit("batch_size: 16", "batch_size: 16\n      optimizer: {lr: -0.1}"),
        ["lr: Input should be greater than 0"],
        (11, 23),
    ),
    # ------------------------------------------------------------ missing files and folders
    Case(
        "path-folder-missing",
        path_model("./runs-elsewhere/ckpts"),
        ["checkpoint folder not found: {dir}/runs-elsewhere/ckpts"],
        (5, 11),
    ),
    Case(
        "path-folder-empty",
        path_model("ckpts"),
        ["no checkpoints in {dir}/ckpts"],
        (5, 11),
        files={"ckpts/notes.txt": "nothing here"},
    ),
    Case(
        "prompt-file-missing",
        edit(
            "    generator: repeated_tokens\n    args: {n: 8, vocab: 16, half_len: 6}\n",
            "    file: data/prompts.txt\n",
        ),
        ["prompt file not found: {dir}/data/prompts.txt"],
        (15, 11),
    ),
    Case(
        "prompt-file-is-a-folder",
        edit(
            "    generator: repeated_tokens\n    args: {n: 8, vocab: 16, half_len: 6}\n",
            "    file: data\n",
        ),
        ["prompt file is a folder, not a file: {dir}/data"],
        (15, 11),
        files={"data/prompts.txt": "hello\n"},
    ),
    Case(
        "tokenizer-folder-missing",
        path_model("ckpts", "    tokenizer: ../shared/tokenizer\n").replace(
            "{steps: [0, 20, 40]}", "all"
        ),
        ["tokenizer folder not found: {parent}/shared/tokenizer"],
        (6, 16),
        files=FAKE_CKPTS,
    ),
    Case(
        "include-file-missing",
        edit("name: tiny", "name: tiny\ninclude: [common/base.yaml]"),
        ["included file not found: {dir}/common/base.yaml"],
        (3, 11),
    ),
    # ------------------------------------------------------------ tokens outside the vocabulary
    Case(
        "prompt-tokens-outside-vocab",
        edit("{n: 8, vocab: 16", "{n: 8, vocab: 50"),
        ["outside the vocabulary of model 'toy' (d_vocab = 16)"],
        (16, 11),
    ),
    Case(
        "prompts-longer-than-context",
        edit("vocab: 16, half_len: 6}\n    seed", "vocab: 16, half_len: 9}\n    seed"),
        ["prompts are 19 tokens long", "(n_ctx = 13)"],
        (16, 11),
    ),
    Case(
        "arch-vocab-smaller-than-task",
        edit("attn_only: true}", "attn_only: true, d_vocab: 8}"),
        ["arch.d_vocab=8 is smaller than task repeated_tokens's 16"],
        (8, 13),
    ),
    # ------------------------------------------------------------ absurdly large values
    Case(
        "training-steps-absurd",
        edit("steps: 40", "steps: 1000000000000"),
        ["less than or equal to 10000000"],
        (9, 14),
    ),
    Case(
        "prompt-count-absurd",
        edit("{n: 8, vocab: 16", "{n: 100000000000, vocab: 16"),
        ["a prompt set needs between 1 and 1000000 prompts"],
        (16, 15),
    ),
    Case(
        "model-absurdly-large",
        edit("d_model: 16, d_head: 8", "d_model: 65536, d_head: 4096"),
        ["this model would have about 4.3e+09 parameters"],
        (8, 13),
    ),
    Case(
        "seed-absurd",
        edit("seeds: [0]", "seeds: [1099511627776]"),
        ["less than or equal to 2147483647"],
        (11, 13),
    ),
    Case(
        "checkpoint-count-absurd",
        edit("{steps: [0, 20, 40]}", "{schedule: log, count: 1000000000}"),
        ["less than or equal to 100000"],
        (12, 41),
    ),
    # ------------------------------------------------------------ the command line itself
    Case(
        "executor-unknown",
        TOY_SPEC,
        ["unknown execution profile 'gpu-farm'"],
        None,
        verbs=("run",),
        argv=["run", "{dir}/spec.yaml", "-q", "--executor", "gpu-farm"],
    ),
    Case(
        "executor-profile-malformed",
        TOY_SPEC,
        ["{dir}/fast.yaml:2:1: wokers: unknown key 'wokers' (did you mean 'workers'?)"],
        None,
        verbs=("run",),
        files={"fast.yaml": "kind: dask-local\nwokers: 4\n"},
        argv=["run", "{dir}/spec.yaml", "-q", "--executor", "{dir}/fast.yaml"],
    ),
    Case(
        "plot-run-folder-missing",
        None,
        ["no results at {dir}/runs/tiny"],
        None,
        verbs=("plot",),
        argv=["plot", "{dir}/runs/tiny", "induction"],
    ),
    Case(
        "report-run-folder-missing",
        None,
        ["no results at {dir}/runs/tiny"],
        None,
        verbs=("report",),
        argv=["report", "{dir}/runs/tiny"],
    ),
    Case(
        "plot-not-a-run-folder",
        TOY_SPEC,
        ["{dir}/spec.yaml is not a mispec run folder"],
        None,
        verbs=("plot",),
        argv=["plot", "{dir}/spec.yaml", "induction"],
    ),
    Case(
        "report-not-a-run-folder",
        None,
        ["{dir}/notes is not a mispec run folder"],
        None,
        verbs=("report",),
        files={"notes/a.txt": "x"},
        argv=["report", "{dir}/notes"],
    ),
]
IDS = [c.id for c in CASES]
assert len(set(IDS)) == len(IDS)


def _project(case: Case, root: Path) -> Path:
    """The case's project folder: spec.yaml, extra files, and an empty store ``.mispec``."""
    project = root / case.id / "project"
    new_project(project, "")
    spec = project / SPEC
    if case.text is None:
        spec.unlink()
    elif isinstance(case.text, bytes):
        spec.write_bytes(case.text)
    else:
        spec.write_text(case.text.replace("{dir}", str(project)))
    for rel, content in case.files.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(content)
    return project


def _argv(case: Case, verb: str, project: Path) -> list[str]:
    argv = case.argv or ["{verb}", str(project / SPEC)] + (["-q"] if verb == "run" else [])
    return [a.replace("{verb}", verb).replace("{dir}", str(project)) for a in argv]


@pytest.fixture(scope="module")
def run_results(tmp_path_factory) -> dict[str, tuple[Path, dict, object, dict]]:
    """Every case's ``run`` (or only verb) as a real subprocess, two at a time."""
    root = tmp_path_factory.mktemp("bad-input")

    def one(case: Case):
        project = _project(case, root)
        verb = "run" if "run" in case.verbs else case.verbs[0]
        before = snapshot(project.parent)
        res = cli(*_argv(case, verb, project), cwd=project, timeout=120)
        return case.id, (project, before, res, snapshot(project.parent))

    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return dict(pool.map(one, CASES))


def _check_message(case: Case, verb: str, project: Path, rc: int, err: str) -> None:
    assert rc == 2, f"{verb}: exit {rc}, expected 2; stderr:\n{err}"
    assert "Traceback" not in err, f"{verb}: a traceback without -v:\n{err}"
    assert "internal error" not in err, err
    assert err.startswith("error: "), err
    for fragment in case.expect:
        fragment = fragment.replace("{dir}", str(project)).replace("{parent}", str(project.parent))
        assert fragment in err, f"{verb}: {fragment!r} not in stderr:\n{err}"
    if case.at is not None:
        line, col = case.at
        where = f"{project / SPEC}:{line}:{col}: "
        assert where in err, f"{verb}: expected the location {where!r} in:\n{err}"


def test_the_corpus_has_at_least_40_cases_and_each_is_documented():
    assert len(CASES) >= 40
    doc = (REPO / "docs" / "reliability.md").read_text()
    missing = [c.id for c in CASES if f"| `{c.id}` |" not in doc]
    assert not missing, f"add these cases to docs/reliability.md: {missing}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_run_exits_2_and_writes_nothing(case, run_results):
    project, before, res, after = run_results[case.id]
    verb = "run" if "run" in case.verbs else case.verbs[0]
    _check_message(case, verb, project, res.returncode, res.stderr)
    assert res.stdout == "", res.stdout
    assert snapshot_diff(before, after) == [], f"{verb} wrote or changed files"
    assert not (project / "pwned").exists()


@pytest.mark.parametrize("case", [c for c in CASES if "validate" in c.verbs], ids=lambda c: c.id)
@pytest.mark.parametrize("verb", ["validate", "plan"])
def test_bad_input_validate_and_plan_exit_2(case, verb, tmp_path):
    project = _project(case, tmp_path)
    before = snapshot(project.parent)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(_argv(case, verb, project))
    _check_message(case, verb, project, rc, err.getvalue())
    assert snapshot_diff(before, snapshot(project.parent)) == []
    assert not (project / "pwned").exists()


def test_verbose_shows_the_traceback(tmp_path):
    case = next(c for c in CASES if c.id == "icl-fed-induction-scores")
    project = _project(case, tmp_path)
    res = cli("-v", "run", str(project / SPEC), "-q", cwd=project)
    assert res.returncode == 2
    assert "Traceback" in res.stderr and "icl_score needs per-token values" in res.stderr


def test_a_bad_spec_leaves_an_existing_store_and_run_untouched(tmp_path):
    """A bad edit of a spec that already ran changes nothing in its store or run folder."""
    project = tmp_path / "project"
    shutil.copytree(reference_run().parents[1], project, symlinks=True)
    bad = edit("inputs: {per_token_loss: per_token_loss}", "inputs: {per_token_loss: induction}")
    (project / SPEC).write_text(bad)
    before = snapshot(project)
    res = cli("run", str(project / SPEC), "-q", cwd=project)
    assert res.returncode == 2, res.stderr
    assert snapshot_diff(before, snapshot(project)) == []
    index = (project / ".mispec" / "runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["study"] for line in index] == ["tiny"]
