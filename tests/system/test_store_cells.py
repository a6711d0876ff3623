"""Metric cells round-trip without pickles: string labels (an object array in xarray) come
back as the same labels, and a cell that would need a pickle is refused at write time."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from mispec.store.cells import CellStore


def test_string_labels_round_trip_without_pickle(tmp_path):
    """weight_norm labels its `component` dim with an object array of names: on 7324d53 the
    cell was written with a pickle and every later read rejected it as corrupt."""
    store = CellStore(tmp_path)
    arr = xr.DataArray(
        [3.5, 1.25],
        dims=("component",),
        coords={"component": np.array(["total", "blocks.0"], dtype=object)},
        attrs={"units": "L2 norm"},
    )
    store.write_encoded("ab" * 16, store.encode(arr, "ab" * 16))
    with np.load(store.path("ab" * 16), allow_pickle=False) as data:  # readable pickle-free
        assert data["coord__component"].dtype.kind == "U"
    back = store.read("ab" * 16)
    assert back is not None
    assert list(back.component.values) == ["total", "blocks.0"]
    np.testing.assert_array_equal(back.values, [3.5, 1.25])
    assert back.attrs["units"] == "L2 norm"


def test_labels_that_would_need_a_pickle_are_refused(tmp_path):
    arr = xr.DataArray(
        [1.0, 2.0], dims=("component",), coords={"component": np.array([1, "a"], dtype=object)}
    )
    with pytest.raises(ValueError, match="cannot be stored"):
        CellStore(tmp_path).encode(arr, "ab" * 16)


def test_a_second_run_of_builtin_metrics_computes_nothing(write_spec):
    """Every built-in cell reads back (weight_norm's string labels included): a second run of
    an unchanged spec computes 0 cells and 0 reductions."""
    import mispec
    from tests.conftest import TOY_SPEC

    spec = write_spec(
        TOY_SPEC
        + "  norms: {fn: weight_norm, args: {group: layer}}\n"
        + "  total: {fn: weight_norm}\n"
        + "  comp: {fn: composition_score}\n"
    )
    first = mispec.run(spec, progress=False)
    assert first.counters["cells_computed"] == 3 * 7
    again = mispec.run(spec, progress=False)
    assert again.counters["cells_computed"] == 0 and again.counters["reductions_computed"] == 0
    assert again.counters["cells_cached"] == first.counters["cells_computed"] + 1
    ds = mispec.open_results(again.run_dir)["toy"].to_dataset()
    total = ds.total.sel(component="total").values  # (seed, step), read back from cells
    layers = ds.norms.drop_sel(component="total").fillna(0.0)
    np.testing.assert_allclose(total, np.sqrt((layers**2).sum("component")).values, rtol=1e-6)
