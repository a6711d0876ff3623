"""Issue 29: the default study's claims hold on its measured results, are recorded in its
provenance and the run index, are checked again on a fully cached re-run with no forward
pass, and ``run --check`` / ``check`` exit 3 through the real CLI when a claim fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mispec

FAILING_CLAIM = """
  too_early:
    text: induction heads form before step 100
    value: transition
    below: 100
"""


def test_the_default_study_claims_hold(default_study):
    _, _, result = default_study
    verdicts = {v.name: v for v in result.claims}
    assert set(verdicts) == {
        "induction_forms",
        "induction_in_layer_1",
        "prev_token_in_layer_0",
        "in_context_learning",
        "loss_falls",
    }
    assert [v.name for v in result.claims if v.status != "pass"] == []
    # the measured values beside each verdict are the results' own
    ds = result.open()["toy2l"].to_dataset()
    t0, t1 = (int(ds.transition.sel(seed=s)) for s in (0, 1))
    assert verdicts["induction_forms"].measured == f"seed 0: {t0}, seed 1: {t1}"
    prov = json.loads((result.run_dir / "provenance.json").read_text())
    assert {c["name"]: c["status"] for c in prov["claims"]} == {n: "pass" for n in verdicts}


def test_a_cached_rerun_checks_the_claims_again_with_no_forward_pass(default_study):
    project, spec, result = default_study
    again = mispec.run(spec, progress=False)
    assert again.counters["forward_passes"] == 0 and not again.did_work
    assert [(v.name, v.status, v.measured) for v in again.claims] == [
        (v.name, v.status, v.measured) for v in result.claims
    ]
    # the run index records the verdicts of the unchanged re-run
    lines = (project / ".mispec" / "runs.jsonl").read_text().splitlines()
    record = json.loads(lines[-1])
    assert record["unchanged"] and record["claims"] == {v.name: "pass" for v in result.claims}


def test_run_check_exits_3_when_a_claim_fails(default_study, tmp_path):
    project, spec, _ = default_study
    edited = project / "failing.yaml"
    edited.write_text(spec.read_text() + FAILING_CLAIM)
    cli = Path(sys.executable).with_name("mispec")
    out = tmp_path / "run"
    cmd = [str(cli), "run", str(edited), "-q", "--out", str(out)]
    done = subprocess.run([*cmd, "--check"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert "claims: 5 pass, 1 fail" in done.stdout
    assert "✗ too_early: induction heads form before step 100 — seed 0: " in done.stdout
    assert "(0 forward passes" in done.stdout  # checking a new claim reads results only
    plain = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr  # without --check a failed claim is reported only
    check = subprocess.run(
        [str(cli), "check", str(out), "--format", "json"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 3, check.stderr
    statuses = {v["name"]: v["status"] for v in json.loads(check.stdout)}
    assert statuses["too_early"] == "fail" and statuses["induction_forms"] == "pass"
    ok = subprocess.run(
        [str(cli), "check", str(out), "--spec", str(spec)],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and ok.stdout.count("✓") == 5, ok.stdout + ok.stderr
