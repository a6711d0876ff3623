"""``mispec view`` in a real browser: the system Chromium driven by Playwright opens the view
of a small run, moves the step slider, toggles a seed, hovers a point, and every value the
page shows is checked against the run's xarray results at that step."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

import mispec
from mispec.cli.main import main

# the system Chromium (`make browser` installs Debian's): Playwright downloads no browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
SPEC = """\
mispec: 1
name: tiny-view
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 40
      batch_size: 16
    seeds: [0, 1]
    checkpoints: {steps: [0, 10, 20, 30, 40]}
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 4, vocab: 16, half_len: 6}
    seed: 1
metrics:
  loss: {fn: loss, prompts: rep}
  induction: {fn: induction_score, prompts: rep}
  patterns: {fn: attention_patterns, prompts: rep, args: {n_prompts: 2}}
  weights: {fn: flat_weights}
  pca: {fn: pca_over_steps, inputs: {series: weights}}
"""


@pytest.fixture(scope="module")
def viewed(tmp_path_factory):
    """(run folder, its results loaded, the written view) of a 2-seed run with head maps,
    attention patterns and a PCA."""
    project = tmp_path_factory.mktemp("view")
    (project / ".mispec").mkdir()
    spec = project / "spec.yaml"
    spec.write_text(textwrap.dedent(SPEC))
    result = mispec.run(spec, progress=False)
    assert main(["view", str(result.run_dir), "--no-serve"]) == 0
    view = Path(result.run_dir) / "view.html"
    return Path(result.run_dir), mispec.open_results(result.run_dir).load()["toy"], view


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, viewed):
    """The view opened from its file; every request the page makes is recorded and no script
    error may happen."""
    pg = browser.new_page(viewport={"width": 1300, "height": 1000})
    requests: list[str] = []
    errors: list[str] = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(viewed[2].as_uri())
    pg.requests = requests  # type: ignore[attr-defined]
    yield pg
    assert errors == []
    pg.close()


def _set_step(pg, k: int) -> None:
    pg.locator(".step-slider").fill(str(k))


def test_slider_shows_the_head_maps_of_the_chosen_step(page, viewed):
    _, toy, _ = viewed
    induction = toy["induction"]
    steps = [int(s) for s in toy.step.values]
    assert page.locator(".step-slider").get_attribute("max") == str(len(steps) - 1)
    for k in (0, 2, len(steps) - 1):
        _set_step(page, k)
        assert page.locator(".step-label").inner_text().startswith(f"{steps[k]} ")
        for seed in (0, 1):
            table = page.locator(f'.headmap[data-metric="induction"] .mapbox[data-seed="{seed}"]')
            cells = table.locator("td")
            assert cells.count() == 4  # 2 layers x 2 heads
            for i in range(cells.count()):
                td = cells.nth(i)
                layer, head = (
                    int(td.get_attribute("data-layer")),
                    int(td.get_attribute("data-head")),
                )
                want = float(induction.sel(seed=seed, step=steps[k], layer=layer, head=head))
                assert float(td.get_attribute("data-value")) == pytest.approx(want, rel=1e-4)
                assert td.inner_text() == f"{want:.2f}"
    # the maps change with the step (the run learned something between the first and last)
    first = induction.sel(step=steps[0]).values
    last = induction.sel(step=steps[-1]).values
    assert not np.allclose(first, last)


def test_attention_patterns_follow_the_slider_and_the_clicked_head(page, viewed):
    _, toy, _ = viewed
    pats = toy["patterns"]
    steps = [int(s) for s in toy.step.values]
    _set_step(page, 1)
    # clicking head (1, 1) in seed 0's map selects it for the patterns
    page.locator('.headmap .mapbox[data-seed="0"] td[data-layer="1"][data-head="1"]').click()
    fig = page.locator('.patterns[data-metric="patterns"]')
    assert fig.locator(".pick-layer").input_value() == "1"
    assert fig.locator(".pick-head").input_value() == "1"
    fig.locator(".pick-prompt").select_option("1")
    for seed in (0, 1):
        want = pats.sel(seed=seed, step=steps[1], layer=1, head=1, batch=1).values
        rects = fig.locator(f'.mapbox[data-seed="{seed}"] rect')
        shown = np.full(want.shape, np.nan)
        for r in rects.evaluate_all(
            "rs => rs.map(r => [+r.dataset.q, +r.dataset.k, r.dataset.value])"
        ):
            shown[r[0], r[1]] = float(r[2]) if r[2] else np.nan
        np.testing.assert_allclose(shown, want, atol=0.5 / 255 + 1e-3)  # bytes: 1/255 steps
        assert np.isfinite(want).all() and want.max() > 0.2  # a real pattern, not zeros


def test_a_seed_toggled_off_hides_its_curves_and_maps(page):
    loss = page.locator('.curve[data-metric="loss"]')
    assert loss.locator('.series[data-seed="1"] polyline').is_visible()
    page.locator('.seed-toggle input[data-seed="1"]').uncheck()
    assert not loss.locator('.series[data-seed="1"] polyline').is_visible()
    assert loss.locator('.series[data-seed="0"] polyline').is_visible()
    assert not page.locator('.headmap .mapbox[data-seed="1"]').is_visible()
    page.locator('.seed-toggle input[data-seed="1"]').check()
    assert loss.locator('.series[data-seed="1"] polyline').is_visible()


def test_hovering_a_curve_point_shows_its_value(page, viewed):
    _, toy, _ = viewed
    want = float(toy["loss"].sel(seed=0, step=20))
    point = page.locator('.curve[data-metric="loss"] .series[data-seed="0"] circle[data-step="20"]')
    assert not page.locator("#tooltip").is_visible()
    point.hover()
    text = page.locator("#tooltip").inner_text()
    assert text.startswith("loss · seed 0 · step 20: ")
    assert float(text.rsplit(": ", 1)[1]) == pytest.approx(want, rel=1e-3)  # 4 digits shown


def test_pca_trajectory_has_a_point_per_step_coloured_by_step(page, viewed):
    _, toy, _ = viewed
    pca = toy["pca"]
    steps = [int(s) for s in toy.step.values]
    fig = page.locator('.trajectory[data-metric="pca"]')
    for seed in (0, 1):
        dots = fig.locator(f'.series[data-seed="{seed}"] circle')
        got = dots.evaluate_all(
            "ds => ds.map(d => [+d.dataset.step, +d.dataset.pc1, +d.dataset.pc2, d.getAttribute('fill')])"
        )
        assert [g[0] for g in got] == steps
        want = pca.sel(seed=seed).transpose("step", "pc").values
        np.testing.assert_allclose([g[1:3] for g in got], want, rtol=1e-4, atol=1e-9)
        assert len({g[3] for g in got}) == len(steps)  # a colour per step
        assert got[0][3] == "rgb(68,1,84)" and got[-1][3] == "rgb(253,231,37)"  # viridis ends


def test_the_view_fetches_nothing_and_names_no_external_url(page, viewed):
    _, _, view = viewed
    assert page.requests == [view.as_uri()]  # the page alone: no script, font or image
    text = view.read_text()
    urls = set(re.findall(r"https?://[^\s\"'`<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace name, never fetched
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert view.stat().st_size < 100_000  # small: no inlined library


def test_screenshot_of_the_view_is_not_blank(page, tmp_path):
    shot = tmp_path / "view.png"
    page.screenshot(path=str(shot), full_page=True)
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[1] == 1300 and img.shape[0] > 1500  # maps, patterns, PCA, curves
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200


def test_mispec_view_serves_the_page_on_localhost(viewed):
    run_dir, _, view = viewed
    proc = subprocess.Popen(
        [sys.executable, "-m", "mispec.cli.main", "view", str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(f"wrote {view} (")
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/view\.html", line)
        assert url, line
        with urllib.request.urlopen(url.group(0), timeout=30) as resp:
            assert resp.read().decode() == view.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_report_links_the_view(viewed, tmp_path):
    """The report's link (``report.view_link``, in its contents) reaches the written view
    from wherever the report is written, and names the command while there is none."""
    from mispec.plot.report import view_link

    run_dir, _, _ = viewed
    for out in (tmp_path / "r.html", run_dir / "report.html"):
        href = re.search(r'<a href="([^"]+)">view\.html</a>', view_link(run_dir, out)).group(1)
        assert (out.parent / href).resolve() == (run_dir / "view.html").resolve()
    assert "<code>mispec view " in view_link(tmp_path, tmp_path / "r.html")
