"""`mispec gc` deletes only what it can prove unreferenced (issue 26, item 2): a run folder
whose plan.json cannot vouch, a missing run index, a run folder the index does not name and
a run in progress (its lease) all keep their entries — checkpoints included — while what is
truly unreferenced is still freed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC

GONE_SPEC = (
    TOY_SPEC.replace("name: tiny", "name: gone")
    .replace("seeds: [0]", "seeds: [1]")
    .replace("seed: 1\n", "seed: 2\n")
)


def _keys(plan_path: Path) -> set[str]:
    """Every store entry a plan names: cells/<key>, forwards/<key>, checkpoints/<id>."""
    plan = json.loads(plan_path.read_text())
    out = {f"cells/{n['key']}" for n in plan["nodes"] if n["kind"] in ("cell", "reduction")}
    out |= {f"forwards/{n['key']}" for n in plan["nodes"] if n["kind"] == "forward"}
    out |= {f"checkpoints/{s['training_identity']}" for s in plan["series"].values()}
    return out


def _entries(store: Path) -> set[str]:
    """Every entry the store holds, named as :func:`_keys` names them."""
    out = {f"cells/{p.stem}" for p in (store / "cells").glob("*/*.npz")}
    out |= {f"forwards/{p.name}" for p in (store / "activations.zarr").glob("*/*") if p.is_dir()}
    out |= {f"checkpoints/{p.name}" for p in (store / "checkpoints").iterdir()}
    return out


def _two_runs(tmp_path: Path) -> tuple[Path, Path, set[str], set[str]]:
    """A store holding a kept run and a run whose folder was deleted (its entries are
    garbage), plus a killed writer's temp file; the store, the kept run folder, and the
    entries of each run."""
    store = tmp_path / ".mispec"
    (tmp_path / "kept.yaml").write_text(TOY_SPEC)
    (tmp_path / "gone.yaml").write_text(GONE_SPEC)
    a = mispec.run(
        tmp_path / "kept.yaml", out=tmp_path / "runs" / "kept", store=store, progress=False
    )
    b = mispec.run(
        tmp_path / "gone.yaml", out=tmp_path / "runs" / "gone", store=store, progress=False
    )
    kept, gone = _keys(a.run_dir / "plan.json"), _keys(b.run_dir / "plan.json")
    assert kept.isdisjoint(gone) and _entries(store) == kept | gone
    assert sum(k.startswith("checkpoints/") for k in gone) == 1
    shutil.rmtree(b.run_dir)
    dead = store / "cells" / "00" / ".tmp-0123456789ab-x.npz"
    dead.parent.mkdir(parents=True, exist_ok=True)
    dead.write_bytes(b"x" * 100)
    return store, a.run_dir, kept, gone


def _gc(store: Path, capsys) -> dict:
    assert main(["gc", "--store", str(store), "--grace", "0", "--apply", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_truncated_plan_keeps_every_entry_until_fixed(tmp_path, capsys):
    store, run_dir, kept, gone = _two_runs(tmp_path)
    plan = run_dir / "plan.json"
    good = plan.read_bytes()
    os.truncate(plan, 200)

    report = _gc(store, capsys)
    assert _entries(store) == kept | gone  # nothing removed, checkpoints included
    assert report["removed"] == {"temporary": 1}  # only the dead writer's temp file
    assert not (store / "cells" / "00" / ".tmp-0123456789ab-x.npz").exists()
    assert report["kept_in_doubt"] > 0
    assert [str(run_dir) in d and "plan.json is damaged" in d for d in report["doubts"]] == [True]
    assert main(["gc", "--store", str(store), "--grace", "0"]) == 0
    text = capsys.readouterr().out
    assert f"run folder {run_dir} cannot vouch" in text and "delete the folder" in text

    plan.write_bytes(good + b"\n")  # readable, but not the plan provenance recorded
    report = _gc(store, capsys)
    assert report["removed"] == {} and _entries(store) == kept | gone
    assert "does not match the digest" in report["doubts"][0]

    plan.write_bytes(good)  # fixed: the deleted run's entries, exactly, are freed
    report = _gc(store, capsys)
    assert report["doubts"] == [] and _entries(store) == kept
    assert report["removed"]["checkpoints"] == 1
    assert report["removed"]["cells"] == sum(k.startswith("cells/") for k in gone)


def test_a_missing_run_index_keeps_every_entry(tmp_path, capsys):
    store, run_dir, kept, gone = _two_runs(tmp_path)
    index = store / "runs.jsonl"
    records = index.read_text().splitlines()
    index.rename(tmp_path / "runs.jsonl.bak")

    report = _gc(store, capsys)
    assert _entries(store) == kept | gone and report["removed"] == {"temporary": 1}
    assert "runs.jsonl is missing" in report["doubts"][0]

    # an index that does not name the kept run (only the deleted one): the kept run's folder
    # is found beside the recorded one and vouches for its entries; the rest is freed
    index.write_text("\n".join(r for r in records if '"study": "gone"' in r) + "\n")
    report = _gc(store, capsys)
    assert report["doubts"] == [] and _entries(store) == kept
    assert report["removed"]["checkpoints"] == 1

    # an unreadable line may be a run's record: kept again
    index.write_text(records[0] + "\n{torn\n")
    report = _gc(store, capsys)
    assert "unreadable line" in report["doubts"][0] and report["removed"] == {}


def _lease(store: Path, plan_path: Path, pid: int, start: str | None) -> Path:
    folder = store / "leases"
    folder.mkdir(exist_ok=True)
    path = folder / f"{pid}-{start or 0}.json"
    plan = json.loads(plan_path.read_text())
    path.write_text(json.dumps({"pid": pid, "start": start, "plan": plan}))
    return path


def test_a_live_lease_keeps_what_its_run_reads_and_a_stale_one_does_not(tmp_path, capsys):
    from mispec.store.leases import process_start, read_leases

    store, run_dir, kept, _ = _two_runs(tmp_path)
    (tmp_path / "gone.yaml").write_text(GONE_SPEC)
    # a run of the deleted run's spec in progress: its lease names that plan (this process
    # stands for it); its entries are kept, however old
    again = mispec.plan(tmp_path / "gone.yaml", store=store)
    from mispec.planning.graph import plan_json

    plan_path = tmp_path / "gone-plan.json"
    plan_path.write_text(json.dumps(plan_json(again.plan)))
    gone = _keys(plan_path)
    live = _lease(store, plan_path, os.getpid(), process_start(os.getpid()))
    report = _gc(store, capsys)
    assert _entries(store) == kept | gone and report["leases"] == 1
    assert report["removed"] == {"temporary": 1} and live.exists()

    # a lease whose process is gone (a finished child's pid), and one whose pid was reused
    # by another process (this one, but another start time): stale, removed with the entries
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead = _lease(store, plan_path, int(child.stdout), None)
    live.unlink()
    reused = _lease(store, plan_path, os.getpid(), "1")
    assert read_leases(store)[0] == []
    report = _gc(store, capsys)
    assert _entries(store) == kept and report["leases"] == 0
    assert report["removed"]["checkpoints"] == 1 and report["removed"]["temporary"] == 2
    assert not dead.exists() and not reused.exists()


def test_a_run_holds_its_lease_while_it_runs_and_drops_it(tmp_path, monkeypatch):
    import mispec.execute.executor as executor
    from mispec.store.leases import read_leases

    seen: list[set[str]] = []
    real_walk = executor.walk

    def walk(ctx, *args, **kwargs):
        plans, stale = read_leases(ctx.store.root)
        assert stale == []
        seen.append({n["key"] for p in plans for n in p["nodes"] if n["kind"] == "cell"})
        return real_walk(ctx, *args, **kwargs)

    monkeypatch.setattr(executor, "walk", walk)
    (tmp_path / "spec.yaml").write_text(TOY_SPEC)
    result = mispec.run(tmp_path / "spec.yaml", store=tmp_path / ".mispec", progress=False)
    plan = json.loads((result.run_dir / "plan.json").read_text())
    assert seen == [{n["key"] for n in plan["nodes"] if n["kind"] == "cell"}]
    assert seen[0] and list((tmp_path / ".mispec" / "leases").iterdir()) == []
