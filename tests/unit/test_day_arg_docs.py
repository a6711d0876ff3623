"""Every built-in argument says what it means: the catalogue (``mispec list``), the editor
schema and its hovers read each one's entry in the ``Args:`` section of its function's or
class's docstring (a pydantic field: its ``description``); one without an entry shows only
its type and default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mispec.catalogue.editor_schema import editor_schema
from mispec.catalogue.entries import KINDS, entries


def test_every_builtin_argument_has_a_meaning():
    missing = [
        f"{kind} {e.name}: {a.name}"
        for kind in KINDS
        for e in entries(kind, builtin_only=True)
        for a in e.args
        if not a.doc.strip()
    ]
    assert missing == []


def _arg(kind: str, name: str, arg: str) -> str:
    (entry,) = [e for e in entries(kind, builtin_only=True) if e.name == name]
    (found,) = [a for a in entry.args if a.name == arg]
    return found.doc


def test_the_catalogue_shows_each_entry_joined_on_one_line():
    # a metric: two continuation lines of its Args: entry joined into one
    assert _arg("metrics", "head_ablation", "method") == (
        "``zero``: replace the head's output ``hook_z`` by zeros; ``mean``: by its mean over "
        "the prompts at each position (padding left out), keeping its constant part."
    )
    # a task's argument, the same on its prompt generator (read from the task's factory)
    eq = (
        "the token id of ``=``, at least ``p`` (``null``: ``p``); ``d_vocab = eq_token + 1``, "
        "so a mixture can give each operation an ``=`` of its own."
    )
    assert _arg("tasks", "modular_division", "eq_token") == eq
    assert _arg("generators", "modular_division", "eq_token") == eq
    # the prompt count a task's generator adds; a finite task's generator has no n, and
    # permutation's n is its own (the group S_n), not the prompt count
    assert _arg("generators", "toy_ioi", "n").startswith("how many prompts to draw")
    assert _arg("generators", "permutation", "n").startswith("the group ``S_n``")
    # a source's field description; an executor option inherited from its base's docstring
    assert _arg("sources", "train", "refine") == (
        "add checkpoints where a transition happens (adaptive)"
    )
    assert _arg("executors", "dask-slurm", "retries") == (
        "reruns of a task that raised an error other than mispec's own (default 2; 0: none)."
    )


def _properties(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            yield node["properties"]
        for value in node.values():
            yield from _properties(value)
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value)


def test_the_editor_schema_describes_an_argument_by_its_entry():
    doc = _arg("metrics", "activation_patching", "min_gap_z")
    assert doc.startswith("the least clean-minus-corrupted logit difference, in standard errors")
    schema = editor_schema(builtin_only=True)
    found = [
        p["min_gap_z"]["description"]
        for p in _properties(schema)
        if "min_gap_z" in p and "activation_patching" in p["min_gap_z"]["description"]
    ]
    assert found == [f"{doc} (float, default 3.0; fn activation_patching)"]
