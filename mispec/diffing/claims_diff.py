"""The claims layer of a diff: each side's claims checked on its own results, and every
claim whose verdict differs between A and B (or that only one side states)."""

from __future__ import annotations

from typing import Any


def claim_changes(a: Any, b: Any) -> list[dict[str, Any]]:
    """``[{name, a, b, measured_a, measured_b}]`` for each claim whose verdict changed
    (``a`` / ``b``: its status on that side, None where that side states no such claim).
    ``a`` and ``b`` are diff sides with results."""
    from mispec.results.claims import check_claims

    verdicts = [
        {v.name: v for v in check_claims(side.results, side.loaded.spec.claims)}
        if side.loaded.spec.claims
        else {}
        for side in (a, b)
    ]
    changes = []
    for name in [*verdicts[0], *(n for n in verdicts[1] if n not in verdicts[0])]:
        va, vb = verdicts[0].get(name), verdicts[1].get(name)
        if va is not None and vb is not None and va.status == vb.status:
            continue
        changes.append(
            {
                "name": name,
                "a": va.status if va else None,
                "b": vb.status if vb else None,
                "measured_a": va.measured if va else None,
                "measured_b": vb.measured if vb else None,
            }
        )
    return changes


def claim_lines(changes: list[dict[str, Any]]) -> list[str]:
    """The text lines of the claims layer (none when no verdict changed)."""
    if not changes:
        return []
    lines = ["", "claims (verdicts that changed):"]
    for c in changes:
        if c["a"] is None:
            lines.append(f"  + {c['name']}: {c['b']} ({c['measured_b']})")
        elif c["b"] is None:
            lines.append(f"  - {c['name']}: was {c['a']} ({c['measured_a']})")
        else:
            lines.append(
                f"  ~ {c['name']}: {c['a']} → {c['b']} ({c['measured_a']} → {c['measured_b']})"
            )
    return lines
