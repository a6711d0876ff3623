"""EVERY built-in metric, comparisons included, gives bit-identical results whatever runs it:
the local executor in one process, its lanes (worker processes), Dask (``dask-local``) and a
rebuild from the cache — every variable of every results node (values and NaN positions,
dims, coordinates, dtypes, attrs) and the provenance checksums (the README's promise).
``tests/system/test_trust_executor_identity.py`` checks the same on a smaller spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mispec.metrics.core import METRICS, load_builtin_metrics

try:
    from tests.helpers.batched_coverage import PROSE, save_tokenizer
    from tests.helpers.every_metric import EVERY_METRIC_SPEC
    from tests.helpers.executor_identity import assert_bitwise_equal, run_everywhere
except ImportError:
    from helpers.batched_coverage import PROSE, save_tokenizer
    from helpers.every_metric import EVERY_METRIC_SPEC
    from helpers.executor_identity import assert_bitwise_equal, run_everywhere

# built-in metrics a tiny toy cannot run, each with why (a new built-in must be added to
# tests/helpers/every_metric.py or here): none
CANNOT_RUN_ON_A_TOY: dict[str, str] = {}


def test_the_spec_names_every_built_in_metric():
    load_builtin_metrics()
    named = {m["fn"] for m in yaml.safe_load(EVERY_METRIC_SPEC)["metrics"].values()}
    records = {name: getattr(item, "__mispec__", item) for name, item in METRICS._items.items()}
    builtin = {  # (a ``module:fn`` plugin another test loaded holds its plain function)
        name
        for name, mdef in records.items()
        if getattr(mdef, "fn", mdef).__module__.startswith("mispec.metrics.builtin")
    }
    assert not set(CANNOT_RUN_ON_A_TOY) & named
    assert builtin - set(CANNOT_RUN_ON_A_TOY) - named == set()
    assert len(builtin) >= 63


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The every-metric spec run from scratch by each executor, and rebuilt from the serial
    run's cache."""
    root = tmp_path_factory.mktemp("identity-all")
    (root / ".mispec").mkdir()
    (root / "prose.txt").write_text(PROSE)
    save_tokenizer(root / "tok")
    spec = root / "spec.yaml"
    spec.write_text(EVERY_METRIC_SPEC)
    return run_everywhere(root, spec)


@pytest.mark.parametrize("other", ["lanes", "dask", "rebuilt"])
def test_every_metric_is_bitwise_the_serial_runs(runs, other):
    ref = assert_bitwise_equal(runs["serial"], runs[other])
    # every metric of the spec has its results in the tree (not silently left out)
    names = {name for _, name in ref}
    for metric in yaml.safe_load(EVERY_METRIC_SPEC)["metrics"]:
        assert metric in names, metric


PCA_SCRIPT = """\
import numpy as np
import xarray as xr
from mispec.runtime.blas_threads import blas_threads
from mispec.runtime.threads import pinned_torch_threads
from mispec.metrics.builtin.reductions import pca_over_steps
rng = np.random.default_rng(0)
steps = np.arange(40) * 10
out = []
with pinned_torch_threads(1):  # what every executor runs its cells under (torch_threads: 1)
    assert blas_threads() and set(blas_threads()) == {1}, blas_threads()
    for vocab in (512, 1250):
        x = rng.standard_normal((40, 64, vocab))
        series = xr.DataArray(x, dims=("step", "batch", "vocab"), coords={"step": steps})
        out.append(pca_over_steps(series, k=3).values)
        w = rng.standard_normal((vocab, vocab))
        out.append(w @ w[:, 0])  # a matrix-vector product, as the Fourier metrics take
print(np.concatenate([o.ravel() for o in out]).tobytes().hex())
"""


def test_numpy_blas_is_pinned_as_torch_is():
    """A Dask worker starts with one OpenBLAS thread, the local executor and its lanes with
    one per core; an SVD (``pca_over_steps``) or a matrix-vector product differs in the last
    bits between the two unless every executor pins numpy's BLAS to ``torch_threads``."""
    import os
    import subprocess
    import sys

    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-c", PCA_SCRIPT], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outs.append(done.stdout.strip())
    assert outs[0] == outs[1]
