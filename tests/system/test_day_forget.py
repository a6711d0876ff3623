"""`mispec forget` (issue 31 §4): after forgetting a run, `mispec gc --apply` frees exactly what
only that run referenced — computed here from the runs' plan.json files — while every entry
another run references stays and its results still open; a run being run again is refused,
an unknown run is exit 2, and nothing changes on a refusal."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC

# the same study with more seeds and another icl window: seed 0's training, forward passes and
# most cells are shared with the first run; its icl cells are not
SECOND = TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1]").replace("late: 10", "late: 12")


def _entry_paths(store: Path, plan_path: Path) -> dict[str, Path]:
    """Every store entry a plan names, by name, with the path that holds it."""
    plan = json.loads(plan_path.read_text())
    out = {}
    for n in plan["nodes"]:
        if n["kind"] in ("cell", "reduction"):
            out[f"cells/{n['key']}"] = store / "cells" / n["key"][:2] / f"{n['key']}.npz"
        elif n["kind"] == "forward":
            out[f"forwards/{n['key']}"] = store / "activations.zarr" / n["key"][:2] / n["key"]
    for s in plan["series"].values():
        tid = s["training_identity"]
        out[f"checkpoints/{tid}"] = store / "checkpoints" / tid
    return out


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _entry_bytes(store: Path) -> int:
    return sum(_bytes(store / name) for name in ("cells", "activations.zarr", "checkpoints"))


def _two_runs(tmp_path: Path):
    store = tmp_path / ".mispec"
    (tmp_path / "first.yaml").write_text(TOY_SPEC)
    (tmp_path / "second.yaml").write_text(SECOND)
    a = mispec.run(tmp_path / "first.yaml", store=store, progress=False)
    b = mispec.run(tmp_path / "second.yaml", store=store, progress=False)
    assert a.run_dir == b.run_dir  # one study: the first run moved to history/
    first_id, second_id = [
        json.loads(line)["run_id"] for line in (store / "runs.jsonl").read_text().splitlines()
    ]
    return store, b.run_dir, first_id, second_id


def test_forget_then_gc_frees_exactly_what_only_the_forgotten_run_used(tmp_path, capsys):
    store, run_dir, first_id, second_id = _two_runs(tmp_path)
    history = run_dir / "history" / first_id
    first = _entry_paths(store, history / "plan.json")
    second = _entry_paths(store, run_dir / "plan.json")
    only_first = set(first) - set(second)
    assert only_first and set(first) & set(second)  # some entries shared, some not
    assert all(k.startswith("cells/") for k in only_first)  # the icl cells of late: 10
    expected = sum(_bytes(first[k]) for k in only_first)
    before = _entry_bytes(store)
    results_before = mispec.open_results(run_dir).load()

    # gc before forgetting frees nothing: the history entry vouches for the first run
    assert main(["gc", "--store", str(store), "--grace", "0", "--apply", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["freed_bytes"] == 0

    assert main(["forget", first_id, "--store", str(store), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["forgotten"] == [
        {"run_id": first_id, "study": "tiny", "folder": str(history), "index_lines": 1}
    ]
    assert not history.exists() and (run_dir / "history").is_dir()
    assert [json.loads(x)["run_id"] for x in (store / "runs.jsonl").read_text().splitlines()] == [
        second_id
    ]
    assert _entry_bytes(store) == before  # forget removes no store entry

    assert main(["gc", "--store", str(store), "--grace", "0"]) == 0  # still a dry run
    assert "would free" in capsys.readouterr().out and _entry_bytes(store) == before
    assert main(["gc", "--store", str(store), "--grace", "0", "--apply", "--format", "json"]) == 0
    gc_report = json.loads(capsys.readouterr().out)
    assert gc_report["freed_bytes"] == expected
    assert gc_report["removed"] == {"cells": len(only_first)}
    assert before - _entry_bytes(store) == expected
    assert all(not first[k].exists() for k in only_first)
    assert all(p.exists() for p in second.values())

    # the second run's results open, match and verify; running it again computes nothing
    xr.testing.assert_identical(mispec.open_results(run_dir).load(), results_before)
    from mispec.store.run_folder import RunFolder

    assert RunFolder(run_dir).damaged() == []
    again = mispec.run(tmp_path / "second.yaml", store=store, progress=False)
    assert not again.did_work


def test_forgetting_the_current_run_by_folder_keeps_history(tmp_path, capsys):
    store, run_dir, first_id, second_id = _two_runs(tmp_path)
    assert main(["forget", str(run_dir), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert f"forgot 1 run(s)\n  {second_id}  tiny: removed {run_dir}" in out
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "history"]
    assert (run_dir / "history" / first_id / "plan.json").is_file()
    # gc now keeps what the first run uses and frees what only the second used
    first = _entry_paths(store, run_dir / "history" / first_id / "plan.json")
    assert main(["gc", "--store", str(store), "--grace", "0", "--apply", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"]["checkpoints"] == 1  # seed 1's
    assert all(p.exists() for p in first.values())


def test_keep_last_forgets_the_older_runs_of_a_study(tmp_path, capsys):
    store, run_dir, first_id, second_id = _two_runs(tmp_path)
    index = store / "runs.jsonl"
    lines = index.read_text().splitlines()
    index.write_text("\n".join([lines[0], "{torn", lines[1]]) + "\n")  # kept byte for byte
    args = ["forget", "--study", "tiny", "--keep-last", "1", "--store", str(store)]
    assert main([*args, "--dry-run", "--format", "json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in dry["forgotten"]] == [first_id] and dry["dry_run"]
    assert (run_dir / "history" / first_id).is_dir()  # a dry run removes nothing
    assert main([*args, "--format", "json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["forgotten"]] == [first_id]
    assert not (run_dir / "history" / first_id).exists()
    assert index.read_text() == "{torn\n" + lines[1] + "\n"
    assert main([*args, "--format", "json"]) == 0  # nothing left to forget
    assert json.loads(capsys.readouterr().out)["forgotten"] == []


def test_refusals_exit_2_and_change_nothing(tmp_path, capsys):
    from mispec.store.leases import Lease

    store, run_dir, first_id, second_id = _two_runs(tmp_path)
    index = (store / "runs.jsonl").read_bytes()
    listing = sorted(str(p) for p in tmp_path.rglob("*"))

    typo = first_id[:-1] + ("0" if first_id[-1] != "0" else "1")
    assert main(["forget", typo, "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert f"no run '{typo}'" in err and f"did you mean '{first_id}'" in err
    assert "Traceback" not in err

    assert main(["forget", "--study", "tiyn", "--keep-last", "0", "--store", str(store)]) == 2
    assert "did you mean 'tiny'" in capsys.readouterr().err
    assert main(["forget", "--study", "tiny", "--store", str(store)]) == 2
    assert "--keep-last and --study go together" in capsys.readouterr().err
    assert main(["forget", "--store", str(store)]) == 2
    assert main(["forget", str(tmp_path), "--store", str(store)]) == 2  # a folder with no run
    assert "holds no run" in capsys.readouterr().err

    # the second run's spec is being run again right now (this process holds its lease):
    # forgetting it is refused, and so is forgetting it among others
    lease = Lease(store)
    lease.hold(json.loads((run_dir / "plan.json").read_text()))
    try:
        assert main(["forget", first_id, second_id, "--store", str(store)]) == 2
        err = capsys.readouterr().err
        assert f"run {second_id} (tiny) is being run again right now" in err
    finally:
        lease.release()
    assert (store / "runs.jsonl").read_bytes() == index
    assert sorted(str(p) for p in tmp_path.rglob("*")) == listing
