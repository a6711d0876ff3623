"""Issue 14 item 11: a broken plugin metric is a MetricError naming the metric and its node
(exit 1), never a silent exit 0 or an "internal error" from deep inside the assembly; a metric
whose value is all NaN is reported as "no value" by the run summary."""

from __future__ import annotations

import numpy as np
import pytest

from mispec.cli.main import main
from tests.conftest import TOY_SPEC

PLUGIN = """
import numpy as np
import xarray as xr

from mispec.metrics.core import metric

P = "blocks.{layer}.attn.hook_pattern"
CALLS = [0]


class Custom(BaseException):
    pass


@metric(dims=("layer", "head"), hooks=(P,))
def exits(acts, prompts):
    raise SystemExit(0)


@metric(dims=("layer", "head"), hooks=(P,))
def custom(acts, prompts):
    raise Custom("boom")


@metric(dims=("layer", "head"), hooks=(P,))
def wrong_sizes(acts, prompts):
    return np.zeros((3, 5))


@metric(dims=("layer", "head"), hooks=(P,))
def strings(acts, prompts):
    return np.array([["a", "b"], ["c", "d"]])


@metric(dims=None, hooks=(P,))
def growing_pos(acts, prompts):
    CALLS[0] += 1
    return xr.DataArray(np.zeros(3 + CALLS[0]), dims=("pos",))


@metric(dims=None, hooks=(P,))
def transposed(acts, prompts):
    pattern = acts[P][:, :, :, -1, 0].mean(dim=1).numpy()  # [layer, head]
    CALLS[0] += 1
    if CALLS[0] % 2:
        return xr.DataArray(pattern, dims=("layer", "head"))
    return xr.DataArray(pattern.T, dims=("head", "layer"))


@metric(dims=None, hooks=(P,))
def straight(acts, prompts):
    return xr.DataArray(acts[P][:, :, :, -1, 0].mean(dim=1).numpy(), dims=("layer", "head"))


@metric(dims=("layer", "head"), hooks=(P,))
def all_nan(acts, prompts):
    return np.full((2, 2), np.nan)
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("failures")
    (root / ".mispec").mkdir()
    (root / "bad.py").write_text(PLUGIN)
    (root / "base.yaml").write_text(TOY_SPEC)
    assert main(["run", str(root / "base.yaml"), "-q"]) == 0  # trains once for all tests
    return root


def run_with(
    project, metric: str, capsys, extra: str = "", flags: tuple[str, ...] = ("-q",)
) -> tuple[int, str]:
    spec = project / f"{metric}.yaml"
    text = TOY_SPEC.replace("name: tiny", f"name: {metric}")
    spec.write_text(text + f'  broken: {{fn: "bad:{metric}", prompts: rep}}\n' + extra)
    capsys.readouterr()
    code = main(["run", str(spec), *flags])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(
    ("metric", "says"),
    [
        ("exits", "raised SystemExit"),
        ("custom", "raised Custom: boom"),
        ("wrong_sizes", "3 entries along 'layer'"),
        ("strings", "dtype <U1"),
        ("growing_pos", "do not fit together"),
    ],
)
def test_a_broken_metric_is_a_metric_error_naming_it(project, capsys, metric, says):
    code, text = run_with(project, metric, capsys)
    assert code == 1, text
    assert "internal error" not in text
    assert "cell:broken/" in text  # the node
    assert says in text


def test_transposed_results_are_aligned(project, capsys):
    import xarray as xr

    code, text = run_with(
        project, "transposed", capsys, '  straight: {fn: "bad:straight", prompts: rep}\n'
    )
    assert code == 0, text
    ds = xr.open_datatree(project / "runs" / "transposed" / "results.zarr", engine="zarr")
    ds = ds["toy"].to_dataset()
    broken = ds["broken"].transpose("seed", "step", "layer", "head")  # first cell's order
    np.testing.assert_array_equal(broken.values, ds["straight"].values)


def test_an_all_nan_metric_says_no_value_and_reruns(project, capsys):
    for _ in range(2):
        code, text = run_with(project, "all_nan", capsys, flags=())
        assert code == 0, text
        assert "broken at the last step: no value" in text
