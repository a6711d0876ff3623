"""The ``dask`` extra brings the dashboard: bokeh >= 3.1 is importable in the project venv
(built from the extras by ``make venv``), and a ``LocalCluster`` started as mispec's
``dask-local`` executor starts it, with a dashboard address, serves the live status page
instead of distributed's "Dask needs bokeh>=3.1.0" placeholder."""

from __future__ import annotations

import logging
import tomllib
import urllib.request
from pathlib import Path

import bokeh
import distributed
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]


def test_the_dask_extra_names_bokeh_and_the_venv_has_it():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    bokeh_req = next(Requirement(r) for r in extras["dask"] if Requirement(r).name == "bokeh")
    assert Version(bokeh.__version__) in bokeh_req.specifier
    assert Version(bokeh.__version__) >= Version("3.1")


def test_a_local_cluster_serves_the_dashboard_status_page():
    # as DaskLocalExecutor.connect starts it, plus a dashboard on a free local port
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",
            host="127.0.0.1",
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        link = client.dashboard_link
        assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
        with urllib.request.urlopen(link, timeout=30) as response:
            status, page = response.status, response.read().decode()
    assert status == 200
    assert "Dask needs bokeh" not in page
    # the live page: bokeh's own scripts draw the status plots
    assert "<title>Dask Diagnostic UI</title>" in page
    assert 'src="static/js/bokeh.min.js' in page
