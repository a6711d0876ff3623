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
    """``node.properties[key]``: one of ``items`` (or a reference); per name, its args.

    Each name is its own ``const`` alternative carrying its own description, so an editor's
    hover over ``fn: induction_score`` shows that metric alone (one ``enum`` of all names
    made VS Code's YAML extension list every name with its summary: a 15 KB popup). The
    reference comes first and carries the key's description: a value that matches no name
    (a typo) hovers with what the key is, and its diagnostic (``errorMessage``, which VS Code's
    YAML extension reads) says where the names are listed."""
    prop = node["properties"][key]
    description = prop.get("description", "")
    named = [
        {"const": e.name, "description": e.summary, "markdownDescription": _markdown(e, key)}
        for e in items
    ]
    kind = {"fn": "metrics", "task": "tasks", "generator": "generators"}[key]
    reference = {
        **REFERENCE,
        "description": description,
        "errorMessage": f"no such {key}: not a registered name (`mispec list {kind}` lists them)"
        " nor a plugin's module:function",
    }
    # oneOf (the alternatives exclude each other): a hover over an ``anyOf`` none of whose
    # alternatives matches (a typo) would join all their descriptions
    new_prop: dict[str, Any] = {"description": description, "oneOf": [reference, *named]}
    if "default" in prop:
        new_prop["default"] = prop["default"]
    if "null" in str(prop.get("anyOf", "")):  # an optional key (``generator``) may be null
        new_prop["oneOf"].append({"type": "null"})
    node["properties"][key] = new_prop
    rules = node.setdefault("allOf", [])
    for e in items:
        rules.append(
            {
                "if": {"properties": {key: {"const": e.name}}, "required": [key]},
                "then": {"properties": {args_key: args_schema(e.args, f"{key} {e.name}")}},
            }
        )


def _markdown(e: Entry, key: str) -> str:
    """A hover over ``key: <name>``: the name, what it is, and its arguments' meanings."""
    lines = [f"`{key}: {e.name}`: {_md(e.summary)}"]
    if e.args:
        lines.append("")
        lines += [f"* `{a.name}` ({a.type}): {_md(a.doc) or _default_text(a)}" for a in e.args]
    return "\n".join(lines)


def _md(text: str) -> str:
    """A docstring's reStructuredText literals (````x````) as Markdown code (```x```)."""
    return text.replace("``", "`")


def _default_text(a: ArgEntry) -> str:
    return "required" if a.required else f"default {a.default!r}"


def args_schema(args: Sequence[ArgEntry], owner: str) -> dict[str, Any]:
    """An object of exactly these arguments (types from their annotations)."""
    props = {}
    for a in args:
        sub = annotation_schema(a.type)
        meaning = f"{a.doc} " if a.doc else ""
        sub["description"] = f"{meaning}({a.type}, {_default_text(a)}; {owner})"
        sub["markdownDescription"] = (
            f"{_md(a.doc)}\n\n" if a.doc else ""
        ) + f"`{a.name}: {a.type}`, {_default_text(a)} ({owner})"
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
