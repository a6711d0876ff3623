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
    store.write_encoded("ab" * 16, store.encode(arr))
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
        CellStore(tmp_path).encode(arr)
