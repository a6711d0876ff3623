"""The store's run index ``runs.jsonl`` (issue 14, item 13): records are written as whole
lines, a torn last line (a writer killed mid-line) never swallows the next record, and
reading it (``mispec ls``) skips and reports lines that are not records."""

from __future__ import annotations

import json
import shutil

import pytest

import mispec
from mispec.store.store import Store
from tests.reliability_helpers import cli, reference_run


def record(run_id: str, study: str = "tiny") -> dict[str, str]:
    return {
        "run_id": run_id,
        "study": study,
        "run_dir": f"/runs/{run_id}",
        "time": "2024-01-01T00:00:00",
        "plan_key": "k",
    }


def test_a_torn_last_line_never_swallows_the_next_run(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(reference_run().parents[1], project, symlinks=True)
    index = project / ".mispec" / "runs.jsonl"
    (first,) = [json.loads(line) for line in index.read_text().splitlines()]
    complete = json.dumps(record("complete"), sort_keys=True)
    torn = json.dumps(record("torn"), sort_keys=True)[:40]  # its writer was killed here
    with open(index, "ab") as fh:
        fh.write(complete.encode() + b"\n" + torn.encode())

    mispec.run(project / "spec.yaml", progress=False)  # records the new run

    lines = index.read_bytes().split(b"\n")
    assert lines[2] == torn.encode() and lines[4] == b""  # the fragment is left on its own
    new = json.loads(lines[3])
    assert new["study"] == "tiny" and new["run_id"] not in (first["run_id"], "complete")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable line\(s\) \(line 3\)"):
        runs = Store(project / ".mispec").runs()
    assert runs == [first, record("complete"), new]


def test_a_record_without_its_newline_is_kept(tmp_path):
    store = Store(tmp_path)
    tmp_path.joinpath("runs.jsonl").write_text(json.dumps(record("a")))  # no "\n" at the end
    store.record_run(record("b"))
    store.record_run(record("c"))
    assert tmp_path.joinpath("runs.jsonl").read_text().count("\n") == 3
    assert store.runs() == [record("a"), record("b"), record("c")]


def test_ls_skips_and_reports_lines_that_are_not_records(tmp_path):
    store = tmp_path / ".mispec"
    store.mkdir()
    good = [record("20240101T000000-aaaaaa", "first"), record("20240102T000000-bbbbbb", "second")]
    lines = [
        json.dumps(good[0]).encode(),
        b'{"run_id": "\xff\xfe", "study": "x"}',  # not UTF-8
        b'{"run_id": "20240101T',  # not JSON
        b"[1, 2, 3]",  # JSON, not a record
        b'{"run_id": 5, "study": "x", "run_dir": "x", "time": "x"}',  # wrong field type
        b"",  # blank lines are no records, and no errors either
        json.dumps(good[1]).encode(),
    ]
    (store / "runs.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    res = cli("ls", "--store", str(store), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    listed = res.stdout.splitlines()
    assert len(listed) == 2
    for line, r in zip(listed, good, strict=True):
        assert line.split() == [r["time"], r["run_id"], r["study"], r["run_dir"]]
    assert "skipped 4 unreadable line(s) (line 2, 3, 4, 5)" in res.stderr, res.stderr
    assert "runs.jsonl" in res.stderr and "Traceback" not in res.stderr, res.stderr
