"""Issue 26 item 3: every stored object is the object its name says, or it is not used.

As git refuses an object whose content does not hash to its name, each kind of stored object
records what it is (key, step, seed, shape, dtype, ...) inside bytes a checksum covers, and a
reader compares that with the name it reads the object under. A file swapped, copied or edited
with its own checksum still valid is corrupt: the store drops it and recomputes or retrains it
(results equal a clean run bit for bit), and a run folder view (``open_results``, ``diff``,
``plot``, ``report``) refuses it (exit 2). Entries of the previous format (no identity in
their checksum) are recomputed, never trusted."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

import mispec
from mispec.errors import ResultsError
from mispec.models import checkpoints as ckpt
from mispec.models.runs import run_dir
from mispec.models.training import ensure_trained
from mispec.store.store import Store
from tests.reliability_helpers import (
    assert_same_results,
    audit_store,
    reference_run,
    results_digest,
)
from tests.system.test_models_training import assert_bitwise_equal, small, weights

PATTERN = "blocks.{layer}.attn.hook_pattern"


# ----------------------------------------------------------------------------- helpers
def _project(tmp_path: Path) -> tuple[Path, Store, dict]:
    """A copy of the reference project (TOY_SPEC run once: steps 0, 20, 40)."""
    project = tmp_path / "project"
    shutil.copytree(reference_run().parents[1], project, symlinks=True)
    spec = project / "spec.yaml"
    nodes = {n.id: n for n in mispec.plan(spec).plan.nodes()}
    return spec, Store(project / ".mispec"), nodes


def _rerun(spec: Path) -> tuple[str, mispec.RunResult]:
    """Run again in-process; the warnings it gave, and its result. Its results must equal
    the clean reference run's bit for bit, and every store entry must verify afterwards."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = mispec.run(spec, progress=False)
    assert_same_results(result.run_dir, reference_run())
    audit_store(spec.parent / ".mispec")
    return "\n".join(str(w.message) for w in caught), result


def _forget_results(spec: Path, store: Store) -> None:
    """Remove the run folder, every cell and the activation cache: a re-run recomputes
    everything from the checkpoints."""
    shutil.rmtree(spec.parent / "runs")
    shutil.rmtree(store.root / "cells")
    shutil.rmtree(store.root / "activations.zarr")


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name("swap.tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _loss(run: Path) -> np.ndarray:
    return mispec.open_results(run)["toy"].to_dataset()["loss"].sel(seed=0).values


# ----------------------------------------------------------------------------- checkpoints
def test_swapped_checkpoint_files_are_retrained_and_losses_stay_right(tmp_path):
    spec, store, nodes = _project(tmp_path)
    (folder,) = (store.root / "checkpoints").iterdir()
    _swap(folder / "model_20.safetensors", folder / "model_40.safetensors")
    for p in (folder / "model_20.safetensors", folder / "model_40.safetensors"):
        ckpt.read_tensors(p)  # each file's own checksums are valid: only its name is wrong
    _forget_results(spec, store)

    said, result = _rerun(spec)  # equal to the clean run: loss at 20 and 40 included
    assert "the file says step = '40' but is read as step = '20'" in said, said
    assert "training step 20 again" in said, said
    clean = _loss(reference_run())
    np.testing.assert_array_equal(_loss(result.run_dir), clean)
    assert clean[1] != clean[2]  # the two swapped steps' losses differ: the test can fail
    meta = ckpt.read_tensors(folder / "model_40.safetensors")[1]
    assert meta["step"] == "40" and meta["file"] == "model"


def test_a_checkpoint_of_another_seed_or_kind_is_refused(tmp_path):
    """Same step, other run (seed 1's file copied into seed 0's folder), or the optimizer
    file under the weights' name: retrained, to the weights seed 0 has."""
    train = small(4)
    ensure_trained("t", train, 0, [0, 2, 4], tmp_path, progress=False)
    ensure_trained("t", train, 1, [0, 2, 4], tmp_path, progress=False)
    right = weights(train, 0, 2, tmp_path)
    mine, other = run_dir(train, 0, tmp_path), run_dir(train, 1, tmp_path)
    shutil.copy(other / "model_2.safetensors", mine / "model_2.safetensors")
    with pytest.warns(UserWarning, match=r"training_identity = .* but is read as"):
        report = ensure_trained("t", train, 0, [0, 2, 4], tmp_path, progress=False)
    assert report.steps_trained == 2  # resumed from step 0's files, step 2 trained again
    assert_bitwise_equal(weights(train, 0, 2, tmp_path), right)

    shutil.copy(mine / "optim_4.safetensors", mine / "model_4.safetensors")
    with pytest.warns(UserWarning, match=r"file = 'optim' but is read as file = 'model'"):
        ensure_trained("t", train, 0, [4], tmp_path, progress=False)
    assert ckpt.read_tensors(mine / "model_4.safetensors")[1]["file"] == "model"


def _rewrite_metadata(path: Path, edit) -> None:
    """Write the file again with its metadata edited and its checksums kept as they were
    (what a hand edit of the header does)."""
    tensors, meta = ckpt.read_tensors(path)
    save_file({k: v.clone() for k, v in tensors.items()}, str(path), metadata=edit(dict(meta)))


def test_edited_optimizer_settings_and_old_format_files_are_not_resumed_from(tmp_path):
    """The optimizer's settings live in the file's metadata: an edited learning rate (the
    tensors' checksum still valid) was resumed from silently; a file without the checksummed
    identity (written by cdb7586) is not trusted either."""
    train = small(8)
    ensure_trained("t", train, 0, [0, 4, 8], tmp_path / "clean", progress=False)
    store = tmp_path / "store"
    ensure_trained("t", train, 0, [0, 4], store, progress=False)
    folder = run_dir(train, 0, store)

    def faster(meta):
        opt = json.loads(meta["optimizer"])
        opt["param_groups"][0]["lr"] *= 10
        return {**meta, "optimizer": json.dumps(opt)}

    _rewrite_metadata(folder / "optim_4.safetensors", faster)
    with pytest.warns(UserWarning, match=r"checksum mismatch in its metadata.*discarding step 4"):
        report = ensure_trained("t", train, 0, [8], store, progress=False)
    assert report.steps_trained == 8  # from step 0: step 4's optimizer state is not used
    assert_bitwise_equal(weights(train, 0, 8, store), weights(train, 0, 8, tmp_path / "clean"))

    def old_format(meta):  # what cdb7586 wrote: no identity checksum, no seed, no kind
        return {k: meta[k] for k in ("step", "training_identity", "format", ckpt.CHECKSUM_KEY)}

    _rewrite_metadata(folder / "model_8.safetensors", old_format)
    ckpt.read_tensors(folder / "model_8.safetensors")  # verifies as before, without identity
    with pytest.warns(UserWarning, match="older mispec"):
        report = ensure_trained("t", train, 0, [8], store, progress=False)
    assert report.steps_trained > 0  # trained again, not trusted
    assert_bitwise_equal(weights(train, 0, 8, store), weights(train, 0, 8, tmp_path / "clean"))


# ----------------------------------------------------------------------------- cells
def test_swapped_cell_files_are_recomputed(tmp_path):
    spec, store, nodes = _project(tmp_path)
    a = store.cells.path(nodes["cell:loss/toy/s0/step20"].key)
    b = store.cells.path(nodes["cell:loss/toy/s0/step40"].key)
    _swap(a, b)
    shutil.rmtree(spec.parent / "runs")  # the results are assembled from the cells again

    said, result = _rerun(spec)
    assert said.count("corrupt metric cell") == 2 and "not " in said, said
    np.testing.assert_array_equal(_loss(result.run_dir), _loss(reference_run()))


def _rewrite_cell(path: Path, edit) -> None:
    """The cell's .npz again, one member edited, its stored metadata (checksum) kept."""
    with np.load(path, allow_pickle=False) as data:
        members = {k: data[k] for k in data.files}
    edit(members)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **members)
    path.write_bytes(buf.getvalue())


def test_a_cell_with_edited_labels_or_attributes_or_of_the_old_format_is_recomputed(tmp_path):
    """The values' checksum alone left a cell's coordinates, dims and attributes unchecked."""
    spec, store, nodes = _project(tmp_path)
    ptl = store.cells.path(nodes["cell:per_token_loss/toy/s0/step20"].key)
    _rewrite_cell(ptl, lambda m: m.update(coord__pos=m["coord__pos"][::-1].copy()))
    ind = store.cells.path(nodes["cell:induction/toy/s0/step20"].key)

    def edit_attrs(m):
        meta = json.loads(str(m["meta"]))
        meta["attrs"]["metric_fn"] = "loss"
        m["meta"] = np.array(json.dumps(meta))

    _rewrite_cell(ind, edit_attrs)
    loss = store.cells.path(nodes["cell:loss/toy/s0/step0"].key)

    def old_format(m):  # cdb7586's meta: a checksum of the values only, no key
        meta = json.loads(str(m["meta"]))
        m["meta"] = np.array(json.dumps({k: meta[k] for k in ("dims", "attrs", "coords")}))

    _rewrite_cell(loss, old_format)
    shutil.rmtree(spec.parent / "runs")

    said, _ = _rerun(spec)
    assert said.count("corrupt metric cell") == 3, said
    assert "checksum mismatch" in said and "older mispec" in said, said


# ----------------------------------------------------------------------------- activations
def _entry(store: Store, nodes: dict, step: int) -> Path:
    return store.activations.entry_path(nodes[f"forward:toy/s0/step{step}/rep"].key, PATTERN)


def _forget_cells_of(store: Store, nodes: dict, step: int) -> None:
    forward = f"forward:toy/s0/step{step}/rep"
    for n in nodes.values():
        if getattr(n, "forward", None) == forward or n.id == "reduce:transition/toy/s0":
            store.cells.path(n.key).unlink(missing_ok=True)


def test_a_flipped_shape_in_an_activations_zarr_json_is_recomputed(tmp_path):
    spec, store, nodes = _project(tmp_path)
    meta_path = _entry(store, nodes, 20) / "zarr.json"
    meta = json.loads(meta_path.read_text())
    assert meta["shape"][-1] == 13  # (prompt, layer, head, query, key): 13 tokens
    text = meta_path.read_text()
    shape_at = text.index('"shape"')
    end = text.index("]", shape_at)
    head, _, tail = text[shape_at:end].rpartition("13")
    flipped = text[:shape_at] + head + "12" + tail + text[end:]  # one bit: '3' -> '2'
    assert json.loads(flipped)["shape"][-1] == 12
    assert json.loads(flipped)["chunk_grid"] == meta["chunk_grid"]
    meta_path.write_text(flipped)
    _forget_cells_of(store, nodes, 20)
    shutil.rmtree(spec.parent / "runs")

    said, result = _rerun(spec)  # metrics equal the clean run's
    assert f"corrupt activation cache entry {meta_path.parent}" in said, said
    assert "checksum mismatch in zarr.json" in said, said
    assert result.counters["forward_passes"] == 1


def test_an_activation_entry_under_another_forward_key_or_of_the_old_format_is_recomputed(
    tmp_path,
):
    spec, store, nodes = _project(tmp_path)
    e20, e40 = _entry(store, nodes, 20), _entry(store, nodes, 40)
    shutil.rmtree(e40)
    shutil.copytree(e20, e40)  # step 20's activations under step 40's forward key
    _forget_cells_of(store, nodes, 40)
    # step 0's entry as cdb7586 wrote it: no digest, no forward key, no chunk crc in zarr.json
    e0 = _entry(store, nodes, 0)
    meta = json.loads((e0 / "zarr.json").read_text())
    meta["attributes"] = {k: meta["attributes"][k] for k in ("hook", "source_dtype")}
    (e0 / "zarr.json").write_text(json.dumps(meta, indent=2))
    _forget_cells_of(store, nodes, 0)
    shutil.rmtree(spec.parent / "runs")

    said, result = _rerun(spec)
    assert "not the one it is read as" in said and "older mispec" in said, said
    assert result.counters["forward_passes"] == 2


# ----------------------------------------------------------------------------- run folder
def _consolidated_loss_attrs(run: Path) -> dict:
    root = json.loads((run / "results.zarr" / "zarr.json").read_text())
    return root["consolidated_metadata"]["metadata"]["toy/loss"]["attributes"]


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def _views_refuse(run: Path, intact: Path, tmp_path: Path, capsys, *needles: str) -> None:
    from mispec.cli.main import main

    with pytest.raises(ResultsError):
        mispec.open_results(run)
    for argv in (
        ["diff", str(intact), str(run)],
        ["plot", str(run), "loss", "-o", str(tmp_path / "x.png")],
        ["report", str(run), "-o", str(tmp_path / "x.html")],
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "damaged" in err and "Traceback" not in err, (argv, err)
        for needle in needles:
            assert needle in err, (argv, needle, err)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.html").exists()


def test_an_edited_attribute_in_results_zarr_is_refused_and_repaired(tmp_path, capsys):
    spec, store, nodes = _project(tmp_path)
    run = spec.parent / "runs" / "tiny"
    intact = tmp_path / "intact"
    shutil.copytree(run, intact)
    assert _consolidated_loss_attrs(run)["metric_fn"] == "loss"

    def swap_fn(root):
        root["consolidated_metadata"]["metadata"]["toy/loss"]["attributes"]["metric_fn"] = "acc"

    _edit_json(run / "results.zarr" / "zarr.json", swap_fn)
    _views_refuse(run, intact, tmp_path, capsys, "results.zarr/zarr.json")
    # an unchanged re-run rebuilds the folder from the cell store
    with pytest.warns(UserWarning, match="damaged"):
        again = mispec.run(spec, progress=False)
    assert not again.did_work
    assert _consolidated_loss_attrs(run)["metric_fn"] == "loss"
    assert results_digest(run / "results.zarr") == results_digest(intact / "results.zarr")

    # a node's own zarr.json (what a reader without consolidated metadata sees) and the run
    # folder's spec.yaml (what diff plans from) are covered too
    _edit_json(
        run / "results.zarr" / "toy" / "loss" / "zarr.json",
        lambda m: m["attributes"].update(units="bits"),
    )
    _views_refuse(run, intact, tmp_path, capsys, "results.zarr/toy/loss/zarr.json")
    shutil.copytree(intact, run, dirs_exist_ok=True)
    mispec.open_results(run)  # intact again
    (run / "spec.yaml").write_text((run / "spec.yaml").read_text() + "# edited\n")
    _views_refuse(run, intact, tmp_path, capsys, "spec.yaml")


def test_a_provenance_without_checksums_or_edited_is_refused(tmp_path, capsys):
    spec, store, nodes = _project(tmp_path)
    run = spec.parent / "runs" / "tiny"
    intact = tmp_path / "intact"
    shutil.copytree(run, intact)
    prov_path = run / "provenance.json"
    clean = prov_path.read_text()

    def strip(prov):  # as cdb7586 wrote it, or as a hand edit leaves it
        for key in list(prov):
            if "checksum" in key or "blake2b" in key:
                del prov[key]

    _edit_json(prov_path, strip)
    _views_refuse(run, intact, tmp_path, capsys, "provenance.json", "records no checksums")

    prov_path.write_text(clean)
    _edit_json(prov_path, lambda p: p.update(summary=["loss fell to 0.000"]))
    _views_refuse(run, intact, tmp_path, capsys, "provenance.json (edited")
    # an unchanged re-run does not print the edited summary: it rebuilds the folder
    with pytest.warns(UserWarning, match="damaged"):
        again = mispec.run(spec, progress=False)
    assert again.summary == json.loads(clean)["summary"]
    mispec.open_results(run)

    # a results.zarr with no provenance beside it: nothing vouches for its bytes
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copytree(run / "results.zarr", lone / "results.zarr")
    with pytest.raises(ResultsError, match=r"provenance.json \(missing\)"):
        mispec.open_results(lone / "results.zarr")


def test_the_intact_reference_verifies():
    """The guard of every refusal above: the untouched run folder opens, and every entry of
    its store verifies under its own name."""
    run = reference_run()
    tree = mispec.open_results(run)
    assert "toy" in tree.children
    counts = audit_store(run.parents[1] / ".mispec")
    assert counts["cells"] > 0 and counts["activations"] > 0 and counts["checkpoints"] == 6
