"""The JSON Schema editors read (``mispec schema``): the spec's structure from
``mispec.spec.schema`` (its ``models:`` union: the entry classes the sources register) plus
what the registries know when it is written.

* ``fn``, ``task`` and ``generator`` are enums of the registered names (built-ins and
  installed plugins), each with its one-line description (``enumDescriptions``, which VS
  Code's YAML extension shows while completing); a ``module:function`` reference stays
  allowed.
* Each name's arguments are checked with ``if``/``then``: ``{fn: induction_score}`` makes
  ``args`` an object of exactly that metric's arguments, with their types, defaults and
  required ones, so a typo'd arg is flagged in the editor as ``mispec validate`` flags it.

``docs/spec.schema.json`` is this schema for the built-ins (``--builtin``); a test fails
when it is stale.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Sequence
from typing import Any

from mispec.catalogue.entries import entries
from mispec.catalogue.records import ArgEntry, Entry

REFERENCE = {
    "type": "string",
    "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
}  # a plugin's module:function, imported beside the spec (no description: hovers show the key's)


def editor_schema(*, builtin_only: bool = False) -> dict[str, Any]:
    """The spec's JSON Schema with registry enums and per-name argument checks."""
    import mispec.sources  # noqa: F401 (the sources register their model entries)
    from mispec.spec.schema import json_schema

    schema = copy.deepcopy(json_schema())
    defs = schema["$defs"]
    _name_enum(defs["MetricSpec"], "fn", "args", entries("metrics", builtin_only=builtin_only))
    _name_enum(defs["TrainSpec"], "task", "task_args", entries("tasks", builtin_only=builtin_only))
    _name_enum(
        defs["PromptSpec"], "generator", "args", entries("generators", builtin_only=builtin_only)
    )
    return schema


def _name_enum(node: dict[str, Any], key: str, args_key: str, items: Sequence[Entry]) -> None:
    """``node.properties[key]``: one of ``items`` (or a reference); per name, its args."""
    prop = node["properties"][key]
    description = prop.get("description", "")
    names = [e.name for e in items]
    enum = {
        "type": "string",
        "enum": names,
        "enumDescriptions": [e.summary for e in items],
        "markdownEnumDescriptions": [e.summary for e in items],
    }
    new_prop: dict[str, Any] = {"description": description, "anyOf": [enum, REFERENCE]}
    if "default" in prop:
        new_prop["default"] = prop["default"]
    if "null" in str(prop.get("anyOf", "")):  # an optional key (``generator``) may be null
        new_prop["anyOf"].append({"type": "null"})
    node["properties"][key] = new_prop
    rules = node.setdefault("allOf", [])
    for e in items:
        rules.append(
            {
                "if": {"properties": {key: {"const": e.name}}, "required": [key]},
                "then": {"properties": {args_key: args_schema(e.args, f"{key} {e.name}")}},
            }
        )


def args_schema(args: Sequence[ArgEntry], owner: str) -> dict[str, Any]:
    """An object of exactly these arguments (types from their annotations)."""
    props = {}
    for a in args:
        sub = annotation_schema(a.type)
        default = "required" if a.required else f"default {a.default!r}"
        sub["description"] = f"{a.type}, {default} ({owner})"
        if not a.required:
            sub["default"] = a.default
        props[a.name] = sub
    out: dict[str, Any] = {
        "description": f"the arguments of {owner}",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
    }
    required = [a.name for a in args if a.required]
    if required:
        out["required"] = required
    return out


_SIMPLE = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "None": {"type": "null"},
    "NoneType": {"type": "null"},
    "dict": {"type": "object"},
    "list": {"type": "array"},
    "tuple": {"type": "array"},
}


def annotation_schema(text: str) -> dict[str, Any]:
    """JSON Schema of a type annotation as written (``int | None``, ``Literal['a', 'b']``,
    ``list[str]``); ``{}`` (anything) for what it cannot read."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        return {}
    return _node_schema(tree)


def _node_schema(node: ast.expr) -> dict[str, Any]:
    if isinstance(node, ast.Name):
        return dict(_SIMPLE.get(node.id, {}))
    if isinstance(node, ast.Constant) and node.value is None:
        return {"type": "null"}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [_node_schema(node.left), _node_schema(node.right)]
        if any(not p for p in parts):
            return {}
        flat = [q for p in parts for q in p.get("anyOf", [p])]
        return {"anyOf": flat}
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        head, inner = node.value.id, node.slice
        elts = inner.elts if isinstance(inner, ast.Tuple) else [inner]
        if head == "Literal":
            try:
                return {"enum": [ast.literal_eval(e) for e in elts]}
            except ValueError:
                return {}
        if head == "Optional":
            sub = _node_schema(elts[0])
            return {"anyOf": [sub, {"type": "null"}]} if sub else {}
        if head in ("list", "tuple", "Sequence"):
            items = _node_schema(elts[0]) if elts else {}
            return {"type": "array", **({"items": items} if items else {})}
        if head in ("dict", "Mapping"):
            return {"type": "object"}
    return {}
