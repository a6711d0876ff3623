"""Claims in the report: the table of verdicts that opens it (each claim linked to the plot
of the metric it reads) and the claimed range drawn on that plot."""

from __future__ import annotations

import html
from typing import Any

MARKS = {
    "pass": "✓",
    "fail": "✗",
    "unevaluable": "?",
    "expected failure": "✓ expected failure",
    "unexpected pass": "✗ unexpected pass",
}


def claims_table(claims: list[dict[str, Any]], drawn: list[str]) -> str:
    """The verdicts recorded in a run's provenance as an HTML table (empty without claims)."""
    if not claims:
        return ""
    rows = []
    for c in claims:
        metric = str(c.get("metric", ""))
        plot = (
            f'<a href="#plot-{html.escape(metric)}">{html.escape(metric)}</a>'
            if metric in drawn
            else html.escape(metric)
        )
        reason = f" <em>(expected: {html.escape(str(c['reason']))})</em>" if c.get("reason") else ""
        status = str(c.get("status", ""))
        rows.append(
            f'<tr class="claim-{status.replace(" ", "-")}"><td>{html.escape(MARKS.get(status, status))}'
            f"</td><td>{html.escape(str(c.get('name', '')))}</td>"
            f"<td>{html.escape(str(c.get('text', '')))}{reason}</td>"
            f"<td>{html.escape(str(c.get('measured', '')))}</td><td>{plot}</td></tr>"
        )
    return (
        '<h2 id="claims">Claims</h2>\n<table><tr><th>verdict</th><th>claim</th><th>text</th>'
        "<th>measured</th><th>plot</th></tr>" + "".join(rows) + "</table>"
    )


def draw_claimed_ranges(fig: Any, metric: str, claims: list[dict[str, Any]]) -> None:
    """Shade the range each value claim on ``metric`` states, on its model's value axis (the
    series over steps or the point per seed: both have the value on y)."""
    for c in claims:
        if c.get("metric") != metric or c.get("kind") != "value":
            continue
        low, high = c.get("low"), c.get("high")
        if low is None and high is None:
            continue
        title = f"{metric} — {c.get('model')}"
        for ax in fig.axes:
            if not ax.get_title().startswith(title):
                continue
            bottom, top = ax.get_ylim()
            lo = low if low is not None else min(bottom, high)
            hi = high if high is not None else max(top, low)
            ax.axhspan(lo, hi, color="tab:green", alpha=0.12, label=f"claim {c.get('name')}")
            ax.legend(fontsize=7, loc="best")
            break
