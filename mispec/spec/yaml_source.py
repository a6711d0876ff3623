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
from mispec.spec.yaml_nodes import Budget, Position, build_value, node_position

KeyPath = tuple[str | int, ...]
MAX_SPEC_BYTES = 8 << 20


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
            data = build_value(loader, node, prefix, file, source, problems, Budget())
        except RecursionError:
            raise SpecError(_too_deep(file, node.start_mark)) from None
        if problems:
            raise SpecError(problems)
        source.positions.setdefault(prefix, node_position(file, node.start_mark, node.start_mark))
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
