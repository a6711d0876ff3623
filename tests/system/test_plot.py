"""Plots and the HTML report of the default study: right size, not blank, self-contained."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess

import matplotlib  # noqa: F401  (the plot extra, installed by `make venv`)
import numpy as np

from mispec.cli.main import main


def _png(path):
    import matplotlib.image as mpimg

    return mpimg.imread(path)


def test_plot_induction_shows_the_transition(default_study, tmp_path, capsys):
    _, _, result = default_study
    out = tmp_path / "x.png"
    assert main(["plot", str(result.run_dir), "induction", "-o", str(out)]) == 0
    img = _png(out)
    h, w = img.shape[:2]
    assert w > 900 and h > 350  # a series panel plus heatmaps at four steps
    assert float(img[..., :3].std()) > 0.1  # not blank
    # more than a handful of distinct colours: lines, heatmaps, colourbar
    assert len(np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200


def test_plot_scalar_metric_linear_and_several(default_study, tmp_path, capsys):
    _, _, result = default_study
    out = tmp_path / "m.png"
    assert main(["plot", str(result.run_dir), "loss", "icl", "--linear", "-o", str(out)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["m-icl.png", "m-loss.png"]
    for name in written:
        assert float(_png(tmp_path / name)[..., :3].std()) > 0.05


def test_plot_unknown_metric_is_a_user_error(default_study, capsys):
    _, _, result = default_study
    assert main(["plot", str(result.run_dir), "inductoin"]) == 2
    assert "did you mean 'induction'" in capsys.readouterr().err


def test_report_is_self_contained(default_study, tmp_path):
    _, _, result = default_study
    out = tmp_path / "report.html"
    assert main(["report", str(result.run_dir), "-o", str(out)]) == 0
    page = out.read_text()
    assert "name: induction-heads" in page  # the spec that ran
    assert page.count("<tr><td>toy2l</td>") == 9  # one table row per variable
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 9  # one image per metric
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "http://" not in page and "https://" not in page  # nothing fetched from outside
    assert page.count('<li><a href="#plot-') == 9  # a table of contents, a link per plot
    assert page.count('<figure id="plot-') == 9
    # headline values per seed, each seed's own strongest head (never the seed mean's)
    ds = result.open()["toy2l"].to_dataset()
    last = ds.induction.isel(step=-1)
    for seed in (0, 1):
        one = last.sel(seed=seed).values
        layer, head = np.unravel_index(int(np.nanargmax(one)), one.shape)
        assert f"seed {seed}: max {one.max():.4g} at layer {layer}, head {head}" in page
    # captions from each variable's description
    assert "<figcaption>loss: Mean next-token cross-entropy" in page


def test_report_renders_in_headless_chromium(default_study, tmp_path):
    """The report as a browser draws it: `make test` installs Debian's chromium first (the
    Makefile's `browser` step), so this runs wherever the project's own setup ran."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium is not None, (
        "no chromium on PATH: `make browser` installs Debian's chromium (as root with apt); "
        "elsewhere install a Chromium yourself"
    )
    _, _, result = default_study
    page = tmp_path / "report.html"
    assert main(["report", str(result.run_dir), "-o", str(page)]) == 0
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,2000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    img = _png(shot)
    assert img.shape[:2] == (2000, 1200)  # the window, drawn
    rgb = (img[..., :3] * 255).astype(np.uint8)
    assert float(img[..., :3].std()) > 0.05  # not a blank page
    # the embedded figures were decoded and drawn: a text-only page at this size has ~200
    # colours (anti-aliased grey text), the report with its plots and heatmaps ~8000
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 1000


def test_seeds_without_a_transition_get_no_marker():
    import xarray as xr

    from mispec.plot.transitions import transitions_of

    series = xr.DataArray(np.zeros((2, 3)), dims=("seed", "step"), coords={"seed": [0, 1]})
    var = xr.DataArray(
        [[534.0, np.nan], [np.nan, np.nan]],
        dims=("seed", "head"),
        coords={"seed": [0, 1]},
        attrs={"metric_fn": "transition_step", "inputs": ["induction"]},
    )
    ds = xr.Dataset({"induction": series, "transition": var})
    tree = xr.DataTree(children={"toy": xr.DataTree(ds)})
    (found,) = transitions_of(tree, "toy", "induction")
    assert found.at == {(0, ()): 534.0} and found.how == "median over head"


def test_a_sweep_points_transition_is_marked_on_its_own_line_not_a_median_across_points():
    """induction_depth: the transition per (n_layers, seed) on the line of that depth and seed
    (390 for 1 layer, 534 / 624 for 2), never one median over the depths per seed."""
    import xarray as xr

    from mispec.plot.panels import _plt, plot_series
    from mispec.plot.transitions import transitions_of

    coords = {"n_layers": [1, 2], "seed": [0, 1], "step": [0, 10, 20]}
    series = xr.DataArray(np.zeros((2, 2, 3)), dims=("n_layers", "seed", "step"), coords=coords)
    var = xr.DataArray(
        [[390.0, np.nan], [534.0, 624.0]],
        dims=("n_layers", "seed"),
        coords={"n_layers": [1, 2], "seed": [0, 1]},
        attrs={"metric_fn": "transition_step", "inputs": ["induction_max"]},
    )
    ds = xr.Dataset({"induction_max": series, "transition": var})
    tree = xr.DataTree(children={"depth": xr.DataTree(ds)})
    (found,) = transitions_of(tree, "depth", "induction_max")
    assert found.at == {(0, (1,)): 390.0, (0, (2,)): 534.0, (1, (2,)): 624.0}
    assert found.how == "" and found.unit_dims == ("n_layers",)
    plt = _plt()  # matplotlib as mispec draws with it (Agg)
    fig, ax = plt.subplots()
    plot_series(ax, series, title="t", transitions=[found])
    labels = [line.get_label() for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert labels == [
        "transition seed 0 n_layers=1: step 390",
        "transition seed 0 n_layers=2: step 534",
        "transition seed 1 n_layers=2: step 624",
    ]
    plt.close(fig)
