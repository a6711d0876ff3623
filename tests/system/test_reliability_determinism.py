"""Determinism: the same spec with a fresh store gives bitwise-identical results on CPU (and
bitwise-identical trained weights and plan keys); every run records its seeds and the
versions of the libraries that computed it. The fresh run here also records any unpickling
of code objects and any ``torch.load`` without ``weights_only=True``: there is none."""

from __future__ import annotations

import importlib.metadata as md
import json
import platform

import xarray as xr

from mispec.models import checkpoints as ckpt
from tests.conftest import TOY_SPEC
from tests.reliability_helpers import (
    assert_same_results,
    cli_audited,
    new_project,
    reference_run,
)


def test_fresh_stores_give_bitwise_identical_results(tmp_path):
    spec = new_project(tmp_path / "project")
    log = tmp_path / "audit.log"
    res = cli_audited("run", str(spec), "-q", cwd=spec.parent, log=log)
    assert res.returncode == 0, res.stderr
    assert log.read_text() == "", f"unsafe loading during a fresh run:\n{log.read_text()}"
    run, ref = spec.parent / "runs" / "tiny", reference_run()
    assert_same_results(run, ref)
    # the same plan: every node's content key, the checkpoint keys, the steps
    assert json.loads((run / "plan.json").read_text()) == json.loads(
        (ref / "plan.json").read_text()
    )
    # the same trained weights, tensor for tensor
    mine = sorted((spec.parent / ".mispec" / "checkpoints").glob("*/model_*.safetensors"))
    theirs = sorted((ref.parents[1] / ".mispec" / "checkpoints").glob("*/model_*.safetensors"))
    assert [p.relative_to(spec.parent / ".mispec") for p in mine] == [
        p.relative_to(ref.parents[1] / ".mispec") for p in theirs
    ]
    for a, b in zip(mine, theirs, strict=True):
        ta, tb = ckpt.read_tensors(a)[0], ckpt.read_tensors(b)[0]
        assert ckpt.tensors_digest(ta) == ckpt.tensors_digest(tb), a.name


def test_runs_record_seeds_and_library_versions():
    run = reference_run()
    prov = json.loads((run / "provenance.json").read_text())
    for pkg in ("mispec", "torch", "transformer-lens", "transformers", "numpy", "xarray", "zarr"):
        assert prov["versions"][pkg] == md.version(pkg), pkg
    assert prov["python"] == platform.python_version()
    assert prov["seeds"] == {"toy": [0]}
    assert prov["device"]["profile"] in ("auto", "cpu") and prov["device"]["cuda"] is False
    assert prov["spec_hash"] and prov["plan_key"] and prov["run_id"]
    # the exact spec, prompt-set seeds included, is kept beside the results
    assert (run / "spec.yaml").read_text() == TOY_SPEC
    tree = xr.open_datatree(run / "results.zarr", engine="zarr")
    assert list(tree["toy"].to_dataset().seed.values) == [0]
