"""Renderers of a ``Diff``: plain text (default), JSON (stable schema), Markdown."""

from __future__ import annotations

import json
from typing import Any

from mispec.diffing.compare import Diff


def _short(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _rel(v: float | None) -> str:
    """A relative change (``|Δ| / max(|old|, |new|)``, 0..2) as a percentage."""
    return "—" if v is None else f"{100 * v:.3g}%"


def _was(old_name: str | None) -> str:
    return f" (renamed from {old_name})" if old_name else ""


def _coords(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("old", "new"))


def render_text(d: Diff) -> str:
    lines = [f"diff {d.a} → {d.b}", "", "spec:"]
    if not d.spec:
        lines.append("  identical")
    for c in d.spec:
        if c.change == "renamed":
            lines.append(f"  ~ {c.path}: renamed {c.old} → {c.new} (same weights: compared)")
        elif c.change == "changed":
            lines.append(f"  ~ {c.path}: {_short(c.old)} → {_short(c.new)}")
        elif c.change == "added":
            lines.append(f"  + {c.path}: {_short(c.new)}")
        else:
            lines.append(f"  - {c.path}: {_short(c.old)}")
    p = d.plan
    lines += [
        "",
        "plan:",
        f"  nodes added {len(p.added)}, removed {len(p.removed)}, invalidated {len(p.invalidated)}",
        f"  to bring B up to date: {p.forward_passes_needed} forward passes, "
        f"{p.results_to_compute} results to compute"
        + (
            ", training " + ", ".join(f"{k} ~{v} steps" for k, v in p.training_needed.items())
            if p.training_needed
            else ""
        ),
    ]
    kinds = _node_kinds(p.invalidated + p.added)
    if kinds:
        lines.append(
            "  changed nodes by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        )
    lines += ["", "results:"]
    if d.results is None:
        lines.append(f"  not compared: {d.results_note}")
    elif not any(v.change != "same" for v in d.results):
        lines.append(
            f"  identical ({len(d.results)} variables within atol={d.atol:g}, rtol={d.rtol:g})"
        )
    else:
        for v in d.results:
            if v.change == "same":
                continue
            head = f"  {v.model}/{v.variable}{_was(v.renamed_from)}: {v.change}"
            if v.change == "changed" and v.max_abs is not None:
                head += (
                    f" — {v.n_changed}/{v.n_compared} values beyond tolerance, "
                    f"max |Δ| {_num(v.max_abs)}, max rel {_rel(v.max_rel)}"
                    + (f" ({v.n_from_zero} from 0)" if v.n_from_zero else "")
                )
            lines.append(head)
            for dim, vals in v.coords_added.items():
                lines.append(
                    f"      + {dim}: {vals if len(vals) <= 8 else str(vals[:8])[:-1] + ', ...]'}"
                )
            for dim, vals in v.coords_removed.items():
                lines.append(
                    f"      - {dim}: {vals if len(vals) <= 8 else str(vals[:8])[:-1] + ', ...]'}"
                )
            for s in v.shifts:
                lines.append(f"      shift {_coords(s)}: {_num(s['old'])} → {_num(s['new'])}")
            if not v.shifts:
                for w in v.where[:5]:
                    if "note" in w:
                        lines.append(f"      {w['note']}")
                    else:
                        lines.append(f"      at {_coords(w)}: {_num(w['old'])} → {_num(w['new'])}")
        same = [f"{v.model}/{v.variable}" for v in d.results if v.change == "same"]
        if same:
            lines.append(f"  unchanged: {', '.join(same)}")
    from mispec.diffing.claims_diff import claim_lines

    return "\n".join(lines + claim_lines(d.claims))


def _node_kinds(ids: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in ids:
        kind = i.split(":", 1)[0]
        out[kind] = out.get(kind, 0) + 1
    return out


def render_json(d: Diff) -> str:
    return json.dumps(d.to_json(), indent=1, default=str)


def render_markdown(d: Diff) -> str:
    lines = [f"### mispec diff `{d.a}` → `{d.b}`", "", "**Spec**", ""]
    if d.spec:
        lines += ["| key | A | B |", "| --- | --- | --- |"]
        lines += [
            f"| `{c.path}` | {_short(c.old) if c.change != 'added' else '—'} | "
            f"{_short(c.new) if c.change != 'removed' else '—'} |"
            for c in d.spec
        ]
    else:
        lines.append("identical")
    p = d.plan
    lines += [
        "",
        "**Plan**",
        "",
        f"{len(p.added)} nodes added, {len(p.removed)} removed, {len(p.invalidated)} invalidated; "
        f"B needs {p.forward_passes_needed} forward passes and {p.results_to_compute} results.",
        "",
        "**Results**",
        "",
    ]
    if d.results is None:
        lines.append(f"not compared: {d.results_note}")
    elif not any(v.change != "same" for v in d.results):
        lines.append("identical")
    else:
        lines += [
            "| variable | change | values changed | max abs Δ | max rel Δ |",
            "| --- | --- | --- | --- | --- |",
        ]
        for v in d.results:
            if v.change != "same":
                lines.append(
                    f"| `{v.model}/{v.variable}`{_was(v.renamed_from)} | {v.change} | "
                    f"{v.n_changed}/{v.n_compared} | "
                    f"{_num(v.max_abs) if v.max_abs is not None else '—'} | {_rel(v.max_rel)} |"
                )
        for v in d.results:
            for s in v.shifts:
                lines.append(
                    f"- `{v.model}/{v.variable}` {_coords(s)}: {_num(s['old'])} → {_num(s['new'])}"
                )
    if d.claims:
        lines += ["", "**Claims** (verdicts that changed)", ""]
        lines += [f"- `{c['name']}`: {c['a'] or '—'} → {c['b'] or '—'}" for c in d.claims]
    return "\n".join(lines)


RENDERERS = {"text": render_text, "json": render_json, "markdown": render_markdown}
