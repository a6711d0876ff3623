"""``mispec diff``: spec, plan and results layers between two versions of a study."""

from __future__ import annotations

import json
import subprocess

import pytest

import mispec
from mispec.cli.main import main
from mispec.errors import DiffError
from tests.conftest import TOY_SPEC


@pytest.fixture
def toy_pair(write_spec):
    """Run the tiny toy spec; return a writer of variants that runs them too."""

    def variant(old: str, new: str, name: str, run: bool = True):
        path = write_spec(TOY_SPEC.replace(old, new), name)
        if run:
            mispec.run(path, progress=False, out=path.parent / "runs" / path.stem)
        return path

    base = variant("", "", "a.yaml")
    return base, variant


def test_default_study_icl_change_reports_exactly_that(default_study, capsys):
    """The issue's acceptance: only `late` changed → one spec key, 0 forward passes, and only
    the ICL score in the results."""
    project, spec, _ = default_study
    edited = project / "late45.yaml"
    edited.write_text(spec.read_text().replace("late: 40", "late: 45"))
    mispec.run(edited, progress=False, out=project / "runs" / "late45")
    d = mispec.diff(str(spec), str(edited))
    assert [(c.path, c.old, c.new) for c in d.spec] == [("metrics.icl.args.late", 40, 45)]
    assert d.plan.forward_passes_needed == 0 and d.plan.results_to_compute == 0
    assert not d.plan.added and not d.plan.removed
    assert {n.split(":")[0] for n in d.plan.invalidated} == {"cell", "assemble"}
    assert all(n.startswith("cell:icl/") for n in d.plan.invalidated if n.startswith("cell:"))
    changed = {v.variable for v in d.results if v.change != "same"}
    assert changed == {"icl"}
    icl = next(v for v in d.results if v.variable == "icl")
    assert icl.n_compared == 80 and icl.max_abs > 0
    # the JSON carries the same facts
    assert main(["diff", str(spec), str(edited), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 2 and data["has_differences"] is True
    assert data["spec"] == [
        {"path": "metrics.icl.args.late", "change": "changed", "old": 40, "new": 45}
    ]
    assert data["plan"]["forward_passes_needed"] == 0
    assert [v["variable"] for v in data["results"] if v["change"] != "same"] == ["icl"]
    assert main(["diff", str(spec), str(edited), "--exit-code"]) == 1
    text = capsys.readouterr().out
    assert "~ metrics.icl.args.late: 40 → 45" in text and "toy2l/icl: changed" in text


def test_identical_runs(toy_pair, capsys):
    a, _ = toy_pair
    assert main(["diff", str(a), str(a), "--exit-code"]) == 0
    out = capsys.readouterr().out
    assert "spec:\n  identical" in out and "results:\n  identical" in out
    # a run folder against its own spec: the same
    d = mispec.diff(str(a.parent / "runs" / "a"), str(a))
    assert not d.has_differences


def test_checkpoint_selection_change(toy_pair):
    a, variant = toy_pair
    b = variant("[0, 20, 40]", "[0, 10, 20, 40]", "b.yaml")
    d = mispec.diff(str(a), str(b))
    assert [(c.path, c.old, c.new) for c in d.spec] == [
        ("models.toy.checkpoints.steps", [0, 20, 40], [0, 10, 20, 40])
    ]
    assert "forward:toy/s0/step10/rep" in d.plan.added and not d.plan.removed
    loss = next(v for v in d.results if v.variable == "loss")
    assert loss.coords_added == {"step": [10]} and loss.n_changed == 0  # old steps unchanged


def test_prompt_seed_change(toy_pair):
    a, variant = toy_pair
    b = variant("seed: 1", "seed: 2", "b.yaml")
    d = mispec.diff(str(a), str(b))
    assert [(c.path, c.old, c.new) for c in d.spec] == [("prompts.rep.seed", 1, 2)]
    kinds = {n.split(":")[0] for n in d.plan.invalidated}
    assert {"prompts", "forward", "cell"} <= kinds and "group" not in kinds and "train" not in kinds
    changed = {v.variable for v in d.results if v.change == "changed"}
    assert {"loss", "induction", "per_token_loss"} <= changed


def test_git_revision_form(tmp_path):
    (tmp_path / ".mispec").mkdir()
    spec = tmp_path / "study.yaml"
    spec.write_text(TOY_SPEC)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "study.yaml"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=tmp_path, check=True)
    mispec.run(spec, progress=False)
    spec.write_text(TOY_SPEC.replace("late: 10", "late: 9"))
    mispec.run(spec, progress=False)
    d = mispec.diff(f"{spec}@HEAD", str(spec))
    assert [(c.path, c.old, c.new) for c in d.spec] == [("metrics.icl.args.late", 10, 9)]
    assert {v.variable for v in d.results if v.change == "changed"} == {"icl"}
    with pytest.raises(DiffError, match="cannot read study.yaml at git revision 'nope'"):
        mispec.diff(f"{spec}@nope", str(spec))
    # a revision relative to another: commit the edit, then compare HEAD~1 with HEAD
    subprocess.run([*git, "commit", "-qam", "v2"], cwd=tmp_path, check=True)
    d = mispec.diff(f"{spec}@HEAD~1", f"{spec}@HEAD")
    assert [(c.path, c.old, c.new) for c in d.spec] == [("metrics.icl.args.late", 10, 9)]
    assert {v.variable for v in d.results if v.change == "changed"} == {"icl"}


@pytest.mark.parametrize(
    "rev",
    ["--output=pwned.txt", "--output=../pwned.txt", "-opwned.txt", "--", "", "HEAD:study.yaml"],
)
def test_a_git_revision_is_never_an_option(tmp_path, monkeypatch, capsys, rev):
    """`spec.yaml@--output=FILE` once reached `git show` as an option and wrote FILE: a
    revision that is not a commit exits 2 naming it, and no file appears anywhere."""
    from tests.reliability_helpers import snapshot, snapshot_diff

    project, cwd = tmp_path / "project", tmp_path / "cwd"
    project.mkdir()
    cwd.mkdir()
    spec = project / "study.yaml"
    spec.write_text(TOY_SPEC)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "add", "study.yaml"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], cwd=project, check=True)
    monkeypatch.chdir(cwd)
    before = snapshot(tmp_path)
    assert main(["diff", f"{spec}@{rev}", str(spec), "--no-results"]) == 2
    err = capsys.readouterr().err
    assert f"{spec}@{rev}: " in err and "Traceback" not in err, err
    assert "is not a git revision" in err or f"at git revision '{rev}': not a commit" in err, err
    assert snapshot_diff(before, snapshot(tmp_path)) == []
    assert main(["diff", f"{spec}@HEAD", str(spec), "--no-results"]) == 0  # still works


def test_bad_input_exits_2(toy_pair, write_spec, capsys):
    a, variant = toy_pair
    never_run = variant("late: 10", "late: 12", "never.yaml", run=False)
    # a spec that has not run: the spec and plan layers, and why results are not compared
    assert main(["diff", str(a), str(never_run)]) == 0
    out = capsys.readouterr().out
    assert "~ metrics.icl.args.late: 10 → 12" in out
    assert "not compared:" in out and "no results" in out and "mispec run" in out
    assert main(["diff", str(a), str(never_run), "--no-results"]) == 0
    assert "~ metrics.icl.args.late: 10 → 12" in capsys.readouterr().out
    other = write_spec(
        TOY_SPEC.replace("name: tiny", "name: other")
        .replace("  toy:", "  toy2:")
        .replace("models.toy", "models.toy2"),
        "other.yaml",
    )
    assert main(["diff", str(a), str(other), "--no-results"]) == 2
    assert "different studies" in capsys.readouterr().err
    assert main(["diff", str(a), str(a.parent / "missing.yaml")]) == 2


def test_markdown_renderer(toy_pair, capsys):
    a, variant = toy_pair
    b = variant("late: 10", "late: 11", "b.yaml")
    assert main(["diff", str(a), str(b), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| `metrics.icl.args.late` | 10 | 11 |" in out
    assert "| `toy/icl` | changed |" in out


def test_plot_overlays_both_versions(toy_pair, tmp_path, capsys):
    import matplotlib.image as mpimg

    a, variant = toy_pair
    b = variant("late: 10", "late: 11", "b.yaml")
    out = tmp_path / "diff.png"
    assert main(["diff", str(a), str(b), "--plot", str(out)]) == 0
    img = mpimg.imread(out)
    assert img.shape[0] > 200 and img.shape[1] > 500
    assert float(img[..., :3].std()) > 0.05  # not blank
