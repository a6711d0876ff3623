"""CLI and notebook conventions: progress on stderr and results on stdout, JSON where a
script reads the output, a run comparison table, shell completion, short reprs, a
discoverable API."""

from __future__ import annotations

import json
import subprocess

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC


def test_progress_goes_to_stderr_and_the_summary_to_stdout(toy_spec, capsys):
    assert main(["run", str(toy_spec)]) == 0  # progress on (no terminal: plain lines)
    out, err = capsys.readouterr()
    assert out.startswith("done in ") and "results:" in out
    assert "[mispec " not in out and "checkpoints" not in out  # no progress among the results
    assert err.splitlines()[-1].endswith("checkpoints 3/3 (done) | reductions 1/1 (done)")


def test_validate_and_ls_speak_json(toy_spec, write_spec, capsys):
    bad = write_spec(TOY_SPEC.replace("fn: induction_score", "fn: induction_scor"), "bad.yaml")
    assert main(["validate", "--format", "json", str(toy_spec), str(bad)]) == 2
    good, wrong = json.loads(capsys.readouterr().out)
    assert good == {
        "spec": str(toy_spec),
        "ok": True,
        "name": "tiny",
        "models": 1,
        "prompts": 1,
        "metrics": 5,
    }
    assert wrong["ok"] is False and len(wrong["problems"]) == 1
    (problem,) = wrong["problems"]
    line = TOY_SPEC.splitlines().index("  induction: {fn: induction_score, prompts: rep}") + 1
    assert problem["file"].endswith("bad.yaml") and problem["line"] == line
    assert problem["key"] == "metrics.induction.fn"
    assert "did you mean 'induction_score'" in problem["message"]

    result = mispec.run(toy_spec, progress=False)
    assert main(["ls", "--store", str(toy_spec.parent / ".mispec"), "--format", "json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["study"] == "tiny" and record["run_dir"] == str(result.run_dir)


def test_runs_table_compares_runs_by_changed_keys_and_values(write_spec, tmp_path, capsys):
    store = tmp_path / ".mispec"
    a = write_spec(TOY_SPEC)
    b = write_spec(TOY_SPEC.replace("late: 10", "late: 12"), "b.yaml")
    ra = mispec.run(a, out=tmp_path / "runs" / "a", store=store, progress=False)
    mispec.run(a, out=tmp_path / "runs" / "a", store=store, progress=False)  # unchanged
    rb = mispec.run(b, out=tmp_path / "runs" / "b", store=store, progress=False)

    assert main(["runs", "--store", str(store), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["changed_keys"] == ["metrics.icl.args.late"]
    first, second = data["runs"]  # the unchanged re-run is no row of its own
    assert first["reruns"] == 1 and second["reruns"] == 0
    assert first["spec"] == {"metrics.icl.args.late": 10}
    assert second["spec"] == {"metrics.icl.args.late": 12}
    for row, res in ((first, ra), (second, rb)):
        ds = res.open()["toy"].to_dataset()
        assert row["values"]["loss"] == [float(ds.loss.isel(step=-1).sel(seed=0))]
        assert row["values"]["icl"] == [float(ds.icl.isel(step=-1).sel(seed=0))]

    assert main(["runs", "--store", str(store), "--only-changed", "--format", "json"]) == 0
    only = json.loads(capsys.readouterr().out)
    assert set(only["runs"][0]["values"]) == {"icl"}  # loss is the same in both runs

    assert main(["runs", "--store", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["run", "study", "metrics.icl.args.late"]
    assert "(+1 unchanged)" in lines[2] and len(lines) == 5  # header, rule, 2 runs, note


def test_bash_completion_is_generated_from_the_parser(tmp_path, capsys):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "mispec.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words):
        cmd = (
            f"source {script}; COMP_WORDS=({' '.join(words)}); "
            f"COMP_CWORD={len(words) - 1}; _mispec; echo ${{COMPREPLY[@]}}"
        )
        return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True).stdout.split()

    assert complete("mispec", "va") == ["validate"]
    assert complete("mispec", "list", "ge") == ["generators"]
    assert complete("mispec", "gc", "--ap") == ["--apply"]
    assert complete("mispec", "-v", "run", "--qu") == ["--quiet"]


def test_reprs_and_dir_show_the_api(toy_spec, write_spec):
    api = {"load_spec", "plan", "run", "open_results", "diff", "metric", "RunResult", "gc"}
    assert api | {"cache_usage", "PlannedSpec", "Diff"} <= set(dir(mispec))
    assert all(callable(getattr(mispec, name)) for name in api)
    planned = mispec.plan(toy_spec)
    assert repr(planned.plan).startswith(f"<Plan 'tiny' {planned.plan.key}: ")
    assert "3 forward" in repr(planned.plan) and "12 cell" in repr(planned.plan)  # 4 × 3 steps
    assert repr(planned).startswith("<PlannedSpec 'tiny': 0/")
    assert "study tiny" in planned._repr_markdown_()
    result = mispec.run(toy_spec, progress=False)
    assert repr(result).startswith(f"<RunResult {result.run_dir}: did work")
    other = write_spec(TOY_SPEC.replace("late: 10", "late: 12"), "other.yaml")
    d = mispec.diff(str(toy_spec), str(other))  # `other` has not run: spec and plan layers
    assert d.results is None and "no results" in d.results_note
    assert repr(d) == (
        f"<Diff {toy_spec} → {other}: 1 spec change(s), "
        f"{len(d.plan.invalidated)} plan node(s) invalidated, results not compared>"
    )
    assert len(d.plan.invalidated) > 0
    assert "metrics.icl.args.late" in d._repr_markdown_()
