"""Safe YAML parsing that remembers where every key and value came from.

Plain ``yaml.safe_load`` loses positions and silently keeps the last of two duplicate keys;
this loader composes the node tree with PyYAML's ``SafeLoader`` (so no Python object is ever
constructed from a tag), refuses duplicate keys and non-standard tags, and records a
``Position`` for each key path so validation errors can say ``study.yaml:14:5``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mispec.errors import Problem, SpecError

KeyPath = tuple[str | int, ...]
MAX_VALUES = 100_000  # a spec is small: more values than this is an alias bomb or a mistake
MAX_SPEC_BYTES = 8 << 20
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


@dataclass
class SourceMap:
    """Key path → position, merged across included files."""

    positions: dict[KeyPath, Position] = field(default_factory=dict)
    root_file: str = "<spec>"

    def locate(self, path: KeyPath, *, at_key: bool = False) -> tuple[str, int | None, int | None]:
        """File, line and column of the deepest known prefix of ``path``."""
        for i in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:i]))
            if pos is not None:
                # a block mapping or list starts on the next line: point at its key instead
                if at_key or i < len(path) or pos.line != pos.key_line:
                    return pos.file, pos.key_line, pos.key_col
                return pos.file, pos.line, pos.col
        return self.root_file, None, None

    def problem(self, path: KeyPath, message: str, *, at_key: bool = False) -> Problem:
        file, line, col = self.locate(path, at_key=at_key)
        return Problem(message=message, path=tuple(path), file=file, line=line, col=col)


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-5`` as the float it is in YAML 1.2 (YAML 1.1, which
    PyYAML follows, wants ``1.0e-5`` and would make ``lr: 1e-5`` a string)."""


_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_yaml(text: str, file: str, prefix: KeyPath = ()) -> tuple[Any, SourceMap]:
    """Parse one YAML document into plain data and its ``SourceMap``; raise ``SpecError``."""
    source = SourceMap(root_file=file)
    try:
        loader = _SpecLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character: located in the text
        raise SpecError(_unprintable(text, exc, file)) from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            msg = f"invalid YAML: {exc.problem or exc}"
            if exc.context:
                msg += f" ({exc.context})"
            raise SpecError(
                Problem(
                    msg,
                    file=file,
                    line=mark.line + 1 if mark else None,
                    col=mark.column + 1 if mark else None,
                )
            ) from None
        except RecursionError:
            raise SpecError(_too_deep(file, None)) from None
        if node is None:
            raise SpecError(Problem("the file is empty; a spec starts with `mispec: 1`", file=file))
        problems: list[Problem] = []
        try:
            data = _build(loader, node, prefix, file, source, problems, _Budget())
        except RecursionError:
            raise SpecError(_too_deep(file, node.start_mark)) from None
        if problems:
            raise SpecError(problems)
        source.positions.setdefault(prefix, _pos(file, node.start_mark, node.start_mark))
        return data, source
    finally:
        loader.dispose()


def _unprintable(text: str, exc: yaml.reader.ReaderError, file: str) -> Problem:
    """YAML refuses control characters (other than tab and newlines) anywhere in a file."""
    before = text[: exc.position]
    line = before.count("\n") + 1
    col = exc.position - (before.rfind("\n") + 1) + 1
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return Problem(
        f"control character {ord(char):#06x} is not allowed in a spec (YAML text has no raw "
        'control characters; write it as an escape such as "\\x01" inside double quotes, '
        "or remove it)",
        file=file,
        line=line,
        col=col,
    )


def _too_deep(file: str, mark: Any) -> Problem:
    return Problem(
        "the YAML is nested too deeply; a spec is a few levels of plain mappings and lists",
        file=file,
        line=mark.line + 1 if mark else None,
        col=mark.column + 1 if mark else None,
    )


class _Budget:
    """Counts the values built, across aliases: ``&a [*b, *b, ...]`` chains (a "billion
    laughs") expand exponentially, so building stops at ``MAX_VALUES``."""

    def __init__(self) -> None:
        self.count = 0
        self.stack: set[int] = set()  # ids of the nodes being built (a recursive alias)


def _pos(file: str, key_mark: Any, value_mark: Any) -> Position:
    return Position(
        file, key_mark.line + 1, key_mark.column + 1, value_mark.line + 1, value_mark.column + 1
    )


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: KeyPath,
    file: str,
    source: SourceMap,
    problems: list[Problem],
    budget: _Budget,
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
    budget: _Budget,
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
            source.positions[(*path, key)] = _pos(file, key_node.start_mark, value_node.start_mark)
            out[key] = _build(loader, value_node, (*path, key), file, source, problems, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            source.positions[(*path, i)] = _pos(file, item.start_mark, item.start_mark)
            items.append(_build(loader, item, (*path, i), file, source, problems, budget))
        return items
    raise TypeError(f"not a collection node: {node!r}")


def read_yaml_file(path: Path, prefix: KeyPath = ()) -> tuple[Any, SourceMap]:
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise SpecError(  # a FIFO or a device (/dev/zero) would block or never end
                Problem(f"not a regular file: {path.resolve()}; a spec is a YAML file")
            )
        with open(path, "rb") as f:  # never read more than a spec can be
            raw = f.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            size = path.stat().st_size
            raise SpecError(
                Problem(
                    f"{path.resolve()} is {size} bytes; a spec is small (at most "
                    f"{MAX_SPEC_BYTES} bytes): is this the right file?"
                )
            )
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SpecError(Problem(f"spec file not found: {path.resolve()}")) from None
    except IsADirectoryError:
        raise SpecError(
            Problem(f"expected a YAML file, got a directory: {path.resolve()}")
        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError(
            Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path))
        ) from None
    return parse_yaml(text, str(path), prefix)
