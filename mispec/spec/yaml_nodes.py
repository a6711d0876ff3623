"""Plain data from PyYAML's node tree, and where each value came from: every key and list
item gets a :class:`Position` in the ``SourceMap``; duplicate keys (after YAML's merge rule),
non-standard tags, recursive aliases and values that do not construct are collected as
problems at their line, and building stops past ``MAX_VALUES`` values (an alias bomb)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from mispec.errors import Problem, SpecError

if TYPE_CHECKING:
    from mispec.spec.yaml_source import KeyPath, SourceMap

MAX_VALUES = 100_000  # a spec is small: more values than this is an alias bomb or a mistake
_STANDARD_TAGS = {
    "tag:yaml.org,2002:" + t
    for t in ("map", "seq", "str", "int", "float", "bool", "null", "timestamp", "binary")
}


@dataclass(frozen=True)
class Position:
    file: str
    key_line: int  # 1-based; for list items and the root, the value's own position
    key_col: int
    line: int  # the value
    col: int


class Budget:
    """Counts the values built, across aliases: ``&a [*b, *b, ...]`` chains (a "billion
    laughs") expand exponentially, so building stops at ``MAX_VALUES``."""

    def __init__(self) -> None:
        self.count = 0
        self.stack: set[int] = set()  # ids of the nodes being built (a recursive alias)


def node_position(file: str, key_mark: Any, value_mark: Any) -> Position:
    return Position(
        file, key_mark.line + 1, key_mark.column + 1, value_mark.line + 1, value_mark.column + 1
    )


def build_value(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: KeyPath,
    file: str,
    source: SourceMap,
    problems: list[Problem],
    budget: Budget,
) -> Any:
    mark = node.start_mark
    budget.count += 1
    if budget.count > MAX_VALUES:
        raise SpecError(
            Problem(
                f"the YAML expands to more than {MAX_VALUES} values (aliases that repeat "
                "aliases?); a spec is small, plain data",
                path=path[:1],  # the top-level entry: the expanded path means nothing
                file=file,
                line=mark.line + 1,
                col=mark.column + 1,
            )
        )
    if id(node) in budget.stack:
        problems.append(
            Problem(
                "this alias refers to the value that contains it (a recursive alias)",
                path=path,
                file=file,
                line=mark.line + 1,
                col=mark.column + 1,
            )
        )
        return None
    if node.tag not in _STANDARD_TAGS and not (
        isinstance(node, yaml.ScalarNode)
        and node.tag.startswith("tag:yaml.org,2002:")
        and node.tag.split(":")[-1] in {"str", "int", "float", "bool", "null"}
    ):
        problems.append(
            Problem(
                f"YAML tag '{node.tag.replace('tag:yaml.org,2002:', '!!')}' is not allowed "
                "(specs are plain data; only standard YAML types are accepted)",
                path=path,
                file=file,
                line=mark.line + 1,
                col=mark.column + 1,
            )
        )
        return None
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        budget.stack.add(id(node))
        try:
            return _build_collection(loader, node, path, file, source, problems, budget)
        finally:
            budget.stack.discard(id(node))
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.constructor.ConstructorError, ValueError, OverflowError) as exc:
        if isinstance(exc, yaml.constructor.ConstructorError):
            why = str(exc.problem)
        elif "digits" in str(exc):  # Python refuses to convert a >4300-digit integer
            why = f"a number of {len(str(node.value))} digits is too long"
        else:
            why = str(exc)
        problems.append(
            Problem(
                f"invalid value: {why}",
                path=path,
                file=file,
                line=mark.line + 1,
                col=mark.column + 1,
            )
        )
        return None


def _merge_overridden(
    loader: yaml.SafeLoader, pairs: list[tuple[yaml.Node, yaml.Node]], explicit: set[int]
) -> list[tuple[yaml.Node, yaml.Node]]:
    """YAML's merge rule: a key written in the mapping itself overrides the same key brought
    in by ``<<`` (and, of several merged mappings, the first one listed wins: PyYAML's
    ``flatten_mapping`` puts it last). Only keys written twice in the mapping itself stay
    duplicates."""
    later: set[Any] = set()
    keep: list[tuple[yaml.Node, yaml.Node]] = []
    for key_node, value_node in reversed(pairs):
        key = loader.construct_scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
        if id(key_node) not in explicit and key is not None and key in later:
            continue  # a merged key overridden by one written later (or listed earlier)
        if key is not None:
            later.add(key)
        keep.append((key_node, value_node))
    return keep[::-1]


def _build_collection(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: KeyPath,
    file: str,
    source: SourceMap,
    problems: list[Problem],
    budget: Budget,
) -> Any:
    if isinstance(node, yaml.MappingNode):
        explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)  # YAML merge keys (<<) resolve to plain keys, first
        out: dict[Any, Any] = {}
        for key_node, value_node in _merge_overridden(loader, node.value, explicit):
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(
                    Problem(
                        "mapping keys must be plain scalars",
                        path=path,
                        file=file,
                        line=key_node.start_mark.line + 1,
                        col=key_node.start_mark.column + 1,
                    )
                )
                continue
            key = loader.construct_scalar(key_node)
            if key in out:
                first = source.positions.get((*path, key))
                where = f" (first defined on line {first.key_line})" if first else ""
                problems.append(
                    Problem(
                        f"duplicate key '{key}'{where}",
                        path=(*path, key),
                        file=file,
                        line=key_node.start_mark.line + 1,
                        col=key_node.start_mark.column + 1,
                    )
                )
                continue
            source.positions[(*path, key)] = node_position(
                file, key_node.start_mark, value_node.start_mark
            )
            out[key] = build_value(loader, value_node, (*path, key), file, source, problems, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            source.positions[(*path, i)] = node_position(file, item.start_mark, item.start_mark)
            items.append(build_value(loader, item, (*path, i), file, source, problems, budget))
        return items
    raise TypeError(f"not a collection node: {node!r}")
