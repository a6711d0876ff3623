"""The store's lifecycle: `mispec cache` reports what it holds, `mispec gc` removes what no
recorded run references (and killed writers' temp files) and nothing a kept run needs."""

from __future__ import annotations

import json
import os
import shutil

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC


def _keys(plan_path):
    plan = json.loads(plan_path.read_text())
    cells = {n["key"] for n in plan["nodes"] if n["kind"] in ("cell", "reduction")}
    forwards = {n["key"] for n in plan["nodes"] if n["kind"] == "forward"}
    trainings = {s["training_identity"] for s in plan["series"].values()}
    return cells, forwards, trainings


def _store_cells(store):
    return {p.stem for p in (store / "cells").glob("*/*.npz")}


def _store_forwards(store):
    return {p.name for p in (store / "activations.zarr").glob("*/*") if p.is_dir()}


def test_gc_frees_a_deleted_runs_entries_and_keeps_what_a_kept_run_needs(
    write_spec, tmp_path, capsys
):
    store = tmp_path / ".mispec"
    kept = write_spec(TOY_SPEC, "kept.yaml")
    gone = write_spec(
        TOY_SPEC.replace("name: tiny", "name: gone")
        .replace("seeds: [0]", "seeds: [1]")
        .replace("seed: 1\n", "seed: 2\n"),
        "gone.yaml",
    )
    a = mispec.run(kept, out=tmp_path / "runs" / "kept", store=store, progress=False)
    b = mispec.run(gone, out=tmp_path / "runs" / "gone", store=store, progress=False)
    a_cells, a_fwd, a_train = _keys(a.run_dir / "plan.json")
    b_cells, b_fwd, b_train = _keys(b.run_dir / "plan.json")
    assert a_cells.isdisjoint(b_cells) and a_fwd.isdisjoint(b_fwd) and a_train != b_train
    assert _store_cells(store) == a_cells | b_cells
    ckpts = {p.name for p in (store / "checkpoints").iterdir()}
    assert ckpts == a_train | b_train

    # a killed writer's temp file (its pid is gone) and a live writer's (this process)
    dead = store / "cells" / "00" / ".tmp-0123456789ab-x.npz"
    dead.parent.mkdir(parents=True, exist_ok=True)
    dead.write_bytes(b"x" * 1000)
    live = store / "checkpoints" / next(iter(a_train)) / f"model_40.safetensors.tmp-{os.getpid()}"
    live.write_bytes(b"y" * 10)

    shutil.rmtree(b.run_dir)
    before = {p for p in store.rglob("*")}
    assert main(["gc", "--store", str(store), "--grace", "0", "--format", "json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert {p for p in store.rglob("*")} == before  # a dry run removes nothing
    assert dry["dry_run"] and dry["removed"]["cells"] == len(b_cells)
    assert dry["removed"]["activations"] > 0 and dry["removed"]["checkpoints"] == 1

    assert main(["gc", "--store", str(store), "--grace", "0", "--apply"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("freed ")
    assert _store_cells(store) == a_cells  # exactly the deleted run's cells are gone
    assert _store_forwards(store) == a_fwd
    assert {p.name for p in (store / "checkpoints").iterdir()} == a_train
    assert not dead.exists() and live.exists()
    live.unlink()

    again = mispec.run(kept, out=tmp_path / "runs" / "kept", store=store, progress=False)
    assert again.counters["forward_passes"] == 0
    assert again.counters["cells_computed"] == 0 and again.counters["training_steps"] == 0


def test_gc_keeps_a_given_spec_and_recent_entries(write_spec, tmp_path, capsys):
    store = tmp_path / ".mispec"
    spec = write_spec(TOY_SPEC)
    result = mispec.run(spec, out=tmp_path / "runs" / "tiny", store=store, progress=False)
    cells, _, _ = _keys(result.run_dir / "plan.json")
    shutil.rmtree(result.run_dir)
    # younger than the grace period: kept (a run in progress may be writing it)
    assert main(["gc", "--store", str(store), "--apply"]) == 0
    assert "younger than 3600 s" in capsys.readouterr().out
    assert _store_cells(store) == cells
    # the spec given with --keep is planned and its entries kept (the API twin: mispec.gc)
    kept = mispec.gc(store, keep=[spec], dry_run=False, grace=0)
    assert kept.removed == [] and kept.kept_referenced >= len(cells)
    assert _store_cells(store) == cells
    assert main(["gc", "--store", str(store), "--apply", "--grace", "0"]) == 0
    assert _store_cells(store) == set()


def test_cache_reports_sizes_by_kind_model_hook_and_run(write_spec, tmp_path, capsys):
    store = tmp_path / ".mispec"
    spec = write_spec(TOY_SPEC)
    mispec.run(spec, out=tmp_path / "runs" / "tiny", store=store, progress=False)
    assert main(["cache", "--store", str(store), "--format", "json"]) == 0
    u = json.loads(capsys.readouterr().out)
    on_disk = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    index = (store / "runs.jsonl").stat().st_size
    zarr_json = sum(p.stat().st_size for p in (store / "activations.zarr").rglob("zarr.json"))
    hooks = sum(p.stat().st_size for p in (store / "activations.zarr").glob("*/*/*/zarr.json"))
    # every byte but the index and the group metadata of the activation hierarchy
    assert u["total"] == on_disk - index - (zarr_json - hooks)
    assert sum(u["by_kind"].values()) == u["total"]
    assert set(u["by_kind"]) == {"activations", "cells", "checkpoints"}
    assert set(u["by_hook"]) == {"blocks.L.attn.hook_pattern", "next_logprob.lp64"}
    assert sum(u["by_hook"].values()) == u["by_kind"]["activations"]
    assert u["by_model"] == {"toy": u["total"]} and u["unreferenced"] == 0
    assert list(u["by_run"].values()) == [u["total"]]


def test_an_fsspec_url_as_store_is_refused_at_once(toy_spec, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (
        ["plan", str(toy_spec), "--store", "s3://bucket/x"],
        ["run", str(toy_spec), "--store", "s3://bucket/x"],
        ["ls", "--store", "gs://bucket/x"],
        ["cache", "--store", "memory://x"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is a URL" in err and "local folder" in err
    assert not any(p.name.endswith(":") for p in tmp_path.rglob("*"))
    before = sorted(tmp_path.rglob("*"))
    monkeypatch.setenv("MISPEC_STORE", "s3://bucket/y")
    assert main(["run", str(toy_spec)]) == 2
    assert "MISPEC_STORE" in capsys.readouterr().err
    # refused before any work: not one file written (counted, not timed)
    assert sorted(tmp_path.rglob("*")) == before
