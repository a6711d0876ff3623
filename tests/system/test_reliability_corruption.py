"""A flipped byte in a cached activation, a metric cell or a trained checkpoint is detected
(checksums: blake2b over the values plus zip CRCs for cells, Zarr's crc32c codec over each
activation chunk), reported with a warning, removed and computed again — never used silently.
The re-run's results equal the clean run's bit for bit, and the store verifies afterwards.

Every re-run here also records any unpickling of code objects and any ``torch.load``
without ``weights_only=True``: there must be none (the load path reads safetensors, npz
without pickle, zarr and JSON only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mispec
from mispec.store.activations import hook_entry_name
from mispec.store.store import Store
from tests.reliability_helpers import (
    assert_same_results,
    audit_store,
    cli_audited,
    reference_run,
)

PATTERN = "blocks.{layer}.attn.hook_pattern"


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset % len(data)
    data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _copy_reference(tmp_path: Path) -> tuple[Path, Store, dict]:
    project = tmp_path / "project"
    shutil.copytree(reference_run().parents[1], project, symlinks=True)
    spec = project / "spec.yaml"
    nodes = {n.id: n for n in mispec.plan(spec).plan.nodes()}
    return spec, Store(project / ".mispec"), nodes


def _rerun(spec: Path, tmp_path: Path) -> tuple[str, dict]:
    log = tmp_path / "audit.log"
    res = cli_audited("run", str(spec), "-q", cwd=spec.parent, log=log)
    assert res.returncode == 0, res.stderr
    assert log.read_text() == "", f"unsafe loading during the run:\n{log.read_text()}"
    prov = json.loads((spec.parent / "runs" / "tiny" / "provenance.json").read_text())
    assert_same_results(spec.parent / "runs" / "tiny", reference_run())
    audit_store(spec.parent / ".mispec")
    return res.stderr, prov["counters"]


def _checkpoint(store: Store, step: int, kind: str = "model") -> Path:
    (path,) = store.root.glob(f"checkpoints/*/{kind}_{step}.safetensors")
    return path


def test_corrupt_activation_cell_and_checkpoint_are_recomputed(tmp_path):
    spec, store, nodes = _copy_reference(tmp_path)
    # 1. an activation chunk of step 0's forward pass; its cells must be recomputed from it
    f0 = nodes["forward:toy/s0/step0/rep"]
    entry = store.activations.entry_path(f0.key, PATTERN)
    chunks = [p for p in entry.rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert chunks
    flip_byte(chunks[0])
    for n in nodes.values():
        if getattr(n, "forward", None) == f0.id:
            store.cells.path(n.key).unlink()
    # 2. a metric cell, read only when the results are assembled
    flip_byte(store.cells.path(nodes["cell:induction/toy/s0/step40"].key))
    # 3. the trained checkpoint of step 20, loaded because its forward pass must run again
    flip_byte(_checkpoint(store, 20), offset=-64)  # in the weights, not the header
    f20 = nodes["forward:toy/s0/step20/rep"]
    shutil.rmtree(store.activations.entry_path(f20.key, PATTERN).parent)
    for n in nodes.values():
        if getattr(n, "forward", None) == f20.id:
            store.cells.path(n.key).unlink()

    err, counters = _rerun(spec, tmp_path)
    assert f"corrupt activation cache entry {entry}" in err, err
    assert "corrupt metric cell" in err and "recomputing it" in err, err
    assert "checksum mismatch" in err and "training step 20 again" in err, err
    assert counters["forward_passes"] == 2  # steps 0 (one hook) and 20 (all hooks)
    assert counters["cells_computed"] >= 7  # 3 + 3 cells of two steps, + induction at 40


def test_corrupt_inputs_of_derived_metrics_and_reductions_are_recomputed(tmp_path):
    spec, store, nodes = _copy_reference(tmp_path)
    # icl (missing) reads per_token_loss (corrupt) of the same checkpoint
    flip_byte(store.cells.path(nodes["cell:per_token_loss/toy/s0/step20"].key))
    store.cells.path(nodes["cell:icl/toy/s0/step20"].key).unlink()
    # the transition (missing) reduces induction over steps; one of them is corrupt
    flip_byte(store.cells.path(nodes["cell:induction/toy/s0/step0"].key))
    store.cells.path(nodes["reduce:transition/toy/s0"].key).unlink()

    err, counters = _rerun(spec, tmp_path)
    assert err.count("corrupt metric cell") == 2, err
    assert counters["forward_passes"] == 0  # recomputed from the cached activations
    assert counters["cells_computed"] == 3 and counters["reductions_computed"] == 1


def test_corrupt_checkpoint_met_while_resuming_training(tmp_path):
    """Training must resume from step 20 to make step 40 again, but step 20's optimizer
    state is corrupt: it is discarded with a warning and training restarts from step 0."""
    spec, store, nodes = _copy_reference(tmp_path)
    for kind in ("model", "optim"):
        _checkpoint(store, 40, kind).unlink()
    f40 = nodes["forward:toy/s0/step40/rep"]
    shutil.rmtree(store.activations.entry_path(f40.key, PATTERN).parent)
    for n in nodes.values():
        if getattr(n, "forward", None) == f40.id or n.id in (
            "cell:icl/toy/s0/step40",
            "reduce:transition/toy/s0",
        ):
            store.cells.path(n.key).unlink()
    flip_byte(_checkpoint(store, 20, "optim"), offset=-16)

    err, counters = _rerun(spec, tmp_path)
    assert "checksum mismatch" in err and "discarding step 20" in err, err
    assert counters["training_steps"] == 40  # from step 0, not from the corrupt step 20


def test_hook_entry_name_is_where_the_test_looks():
    assert hook_entry_name(PATTERN) == "blocks.L.attn.hook_pattern"
