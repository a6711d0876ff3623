"""Issue 14 item 3: results.zarr carries per-variable checksums (in provenance.json); an
unchanged re-run verifies them and rebuilds a damaged results.zarr from the cell store, and
diff / plot / report refuse a damaged run folder naming the variable (exit 2)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("checksums")
    (root / ".mispec").mkdir()
    spec = root / "spec.yaml"
    spec.write_text(TOY_SPEC)
    result = mispec.run(spec, progress=False)
    original = result.open()["toy"].to_dataset().load()
    return root, spec, result.run_dir, original


def chunks(run_dir, variable: str):
    files = sorted(
        p for p in (run_dir / "results.zarr" / "toy" / variable).rglob("*") if p.is_file()
    )
    return [p for p in files if p.name != "zarr.json"]


def flip_a_byte(run_dir, variable: str) -> None:
    chunk = chunks(run_dir, variable)[0]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))


def delete_a_chunk(run_dir, variable: str) -> None:
    chunks(run_dir, variable)[0].unlink()


@pytest.mark.parametrize("damage", [flip_a_byte, delete_a_chunk])
def test_an_unchanged_rerun_repairs_damaged_results(project, damage):
    root, spec, run_dir, original = project
    damage(run_dir, "induction")
    with pytest.warns(UserWarning, match=r"damaged \(toy/induction"):
        again = mispec.run(spec, progress=False)
    assert not again.did_work  # rebuilt from the cell store: nothing computed
    ds = again.open()["toy"].to_dataset()
    for name in original.data_vars:
        np.testing.assert_array_equal(ds[name].values, original[name].values, err_msg=name)
    # intact now: the next re-run leaves the folder as it is
    history = sorted((run_dir / "history").iterdir())
    mispec.run(spec, progress=False)
    assert sorted((run_dir / "history").iterdir()) == history


def test_diff_plot_report_refuse_a_damaged_run_folder(project, capsys, tmp_path):
    root, spec, run_dir, _ = project
    intact = tmp_path / "intact"
    shutil.copytree(run_dir, intact)
    flip_a_byte(run_dir, "loss")
    for argv in (
        ["diff", str(intact), str(run_dir)],
        ["plot", str(run_dir), "loss", "-o", str(tmp_path / "x.png")],
        ["report", str(run_dir), "-o", str(tmp_path / "x.html")],
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "toy/loss" in err and "damaged" in err, (argv, err)
    # plan.json is checked too
    mispec.run(spec, progress=False)  # repairs
    (run_dir / "plan.json").write_text("{}")
    assert main(["report", str(run_dir), "-o", str(tmp_path / "y.html")]) == 2
    assert "plan.json" in capsys.readouterr().err
