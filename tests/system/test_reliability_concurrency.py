"""Two ``mispec run`` of one spec on one store at the same time: both complete, both give
the results of a lone run bit for bit, and the store holds only entries that verify.

Entries are content-addressed and written beside then renamed into place (the same key
always holds the same bytes), so two writers of one entry are harmless; the run folder swap
is serialised by a lock on the run folder, the later run becoming the current one and the
earlier moving to ``history/`` (or, where one run computed nothing because the other had
already finished, it finds that run in place and leaves it)."""

from __future__ import annotations

import json

from tests.reliability_helpers import (
    assert_same_results,
    audit_store,
    new_project,
    popen_cli,
    reference_run,
)


def test_two_concurrent_runs_of_one_spec(tmp_path):
    spec = new_project(tmp_path / "project")
    procs = [popen_cli("run", str(spec), "-q", cwd=spec.parent) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert "corrupt" not in err.lower(), err
        assert "done in" in out or "nothing to do" in out
    run_dir = spec.parent / "runs" / "tiny"
    assert_same_results(run_dir, reference_run())
    lines = (spec.parent / ".mispec" / "runs.jsonl").read_text().splitlines()
    index = [json.loads(line) for line in lines]
    assert len(index) == 2
    current = json.loads((run_dir / "provenance.json").read_text())
    unchanged = [e for e in index if e.get("unchanged")]
    if unchanged:  # one run computed nothing and found the other's run already in place
        (entry,) = unchanged
        assert entry["same_as"] == current["run_id"] != entry["run_id"]
        assert [e["run_id"] for e in index if not e.get("unchanged")] == [current["run_id"]]
        assert not (run_dir / "history").exists()  # the run folder was left as it was
    else:
        (older,) = list((run_dir / "history").iterdir())  # the other run, complete, moved aside
        assert_same_results(older, reference_run())
        provs = [current, json.loads((older / "provenance.json").read_text())]
        ids = {p["run_id"] for p in provs}
        assert len(ids) == 2
        a, b = provs  # the two runs overlapped in time (ISO timestamps, to the second)
        assert a["started"] <= b["finished"] and b["started"] <= a["finished"]
        assert {e["run_id"] for e in index} == ids
    counts = audit_store(spec.parent / ".mispec")
    assert counts["cells"] == 13 and counts["checkpoints"] == 6
    assert not list(spec.parent.joinpath("runs").glob(".staging-*"))


def test_concurrent_runs_into_separate_run_folders(tmp_path):
    """The same spec, one store, two ``--out`` folders: both complete and agree."""
    spec = new_project(tmp_path / "project")
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [popen_cli("run", str(spec), "-q", "--out", str(o), cwd=spec.parent) for o in outs]
    for p in procs:
        _out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    for o in outs:
        assert_same_results(o, reference_run())
    audit_store(spec.parent / ".mispec")
