"""Run one spec on every executor (serial local, its lanes, ``dask-local``) and once more
from the serial run's cache, and compare the results bit for bit: what
``tests/system/test_trust_executor_identity*.py`` share."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mispec


def _profile(root: Path, name: str, body: str) -> str:
    path = root / f"{name}.yaml"
    path.write_text(f"name: {name}\nkind: local\ntorch_threads: 1\n{body}")
    return str(path)


def run_everywhere(root: Path, spec: Path) -> dict[str, Path]:
    """``spec`` run from scratch (its own store) by each executor, and once more from the
    serial run's store (every cell cached): the run folders by name."""
    from mispec.execute.local.lanes import LanePool

    executors = {
        "serial": _profile(root, "serial", "processes: 1\n"),
        "lanes": _profile(
            root, "lanes", "processes: 2\nparallel_min_steps: 1\nparallel_min_seconds: 0\n"
        ),
        "dask": "dask-local",
    }
    lanes: list[str] = []
    real_add = LanePool.add

    def spy(self, lane):
        lanes.append(lane[0].id)
        real_add(self, lane)

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LanePool, "add", spy)
        for name, executor in executors.items():
            result = mispec.run(
                spec,
                executor=executor,
                store=root / f"store-{name}",
                out=root / f"run-{name}",
                progress=False,
            )
            assert result.counters["cells_cached"] == 0, name
            out[name] = result.run_dir
            if name == "lanes":
                assert lanes, "the lanes profile ran nothing in a worker process"
        rebuilt = mispec.run(
            spec,
            executor=executors["serial"],
            store=root / "store-serial",
            out=root / "run-rebuilt",
            progress=False,
        )
    assert rebuilt.counters["cells_computed"] == 0 and rebuilt.counters["forward_passes"] == 0
    out["rebuilt"] = rebuilt.run_dir
    return out


def variables(run: Path) -> dict[tuple[str, str], xr.Variable]:
    """Every variable (data and coordinate) of every node of a run's results."""
    tree = mispec.open_results(run).load()
    return {
        (node.path, str(name)): var
        for node in tree.subtree
        for name, var in node.to_dataset().variables.items()
    }


def assert_bitwise_equal(ref_run: Path, other_run: Path) -> dict[tuple[str, str], xr.Variable]:
    """Every variable of ``other_run`` is ``ref_run``'s to the last bit (values and NaN
    positions, dims, dtype, attrs), and so are the provenance checksums; returns ``ref_run``'s
    variables."""
    ref, got = variables(ref_run), variables(other_run)
    assert sorted(ref) == sorted(got)
    for where, a in ref.items():
        b = got[where]
        assert a.dims == b.dims and a.attrs == b.attrs, where
        assert list(a.attrs) == list(b.attrs), where
        assert a.dtype == b.dtype, (where, a.dtype, b.dtype)
        x, y = np.asarray(a.values), np.asarray(b.values)
        assert x.shape == y.shape and x.tobytes() == y.tobytes(), where
    prov = [json.loads((run / "provenance.json").read_text()) for run in (ref_run, other_run)]
    assert prov[0]["checksums"] and prov[0]["checksums"] == prov[1]["checksums"]
    return ref
