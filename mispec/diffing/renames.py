"""A model renamed between two specs is the same model: matched by identity, not by name.

A model's identity is the content keys of its weights (the plan's ``group`` nodes: one per
seed and checkpoint step, keyed by the model's source or training settings, never its name).
A model only in A and one only in B that share a weight key are one model under two names;
the diff compares them instead of reporting one removed and one added.
"""

from __future__ import annotations

from typing import Any


def _weight_keys(plan: Any) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for node in plan.nodes():
        if node.id.startswith("group:") and getattr(node, "model", None):
            out.setdefault(node.model, set()).add(node.key)
    return out


def model_renames(plan_a: Any, plan_b: Any) -> dict[str, str]:
    """``{name in A: name in B}`` for each model only in A that is, by its weight keys, a
    model only in B (the pairs sharing the most keys first, each model matched once)."""
    ka, kb = _weight_keys(plan_a), _weight_keys(plan_b)
    only_a, only_b = sorted(set(ka) - set(kb)), sorted(set(kb) - set(ka))
    pairs = sorted(
        ((len(ka[a] & kb[b]), a, b) for a in only_a for b in only_b if ka[a] & kb[b]),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    renames: dict[str, str] = {}
    for _, a, b in pairs:
        if a not in renames and b not in renames.values():
            renames[a] = b
    return renames


def renamed_id(node: Any, renames: dict[str, str]) -> str:
    """A node id of plan A as plan B names it: the model segment renamed
    (``cell:loss/old/s0/step0`` → ``cell:loss/new/s0/step0``)."""
    model = getattr(node, "model", None)
    if model not in renames:
        return str(node.id)
    kind, _, rest = node.id.partition(":")
    parts = rest.split("/")
    seed = f"s{getattr(node, 'seed', '')}"
    for i, part in enumerate(parts):
        if part == model and (i + 1 == len(parts) or parts[i + 1] == seed):
            parts[i] = renames[model]
            break
    return f"{kind}:{'/'.join(parts)}"
