"""The lines of a text prompt file, read and checked before any tokenizer is involved.

``.txt``: one prompt per non-empty line. ``.jsonl``: one JSON object per non-empty line::

    {"text": "When Mary and John went to the store, John gave a drink to",
     "answer": " Mary", "wrong_answer": " John",
     "corrupt_text": "When Mary and John went to the store, Paul gave a drink to",
     "positions": {"IO": {"word": 1}, "S1": {"word": 3}, "S2": {"word": 9}, "END": "last"}}

``text`` is required; ``answer``, ``wrong_answer`` (strings that must be ONE token for every
model that reads the set), ``corrupt_text`` (the corrupted twin of ``text``, the same number of
tokens) and ``positions`` are optional, but a field that one line has, every line has (and
every line names the same positions): a prompt set is a table, not a bag of records. A
position is a token index into the text's own tokens (``3``, or ``{"token": 3}``; the BOS that
mispec prepends is not counted; negative counts from the end), the first token of a
whitespace-separated word (``{"word": 1}``; negative from the end) or ``"last"``.

Every problem is a :class:`PromptFileError` carrying the file and the 1-based line, which
``mispec validate`` reports as ``file:line:col`` (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mispec.errors import PromptError

# The fields of one .jsonl prompt line: the required ``text`` and the optional rest.
JSONL_FIELDS = ("text", "answer", "wrong_answer", "corrupt_text", "positions")
# The prompt-set extra each optional field becomes (positions become ``pos_<name>``).
FIELD_EXTRAS = {
    "answer": "answer",
    "wrong_answer": "wrong_answer",
    "corrupt_text": "corrupt_tokens",
}
POSITION_PREFIX = "pos_"
POSITION_KINDS = ("token", "word")


class PromptFileError(PromptError):
    """A problem at one line of a prompt file (``file:line: message``)."""

    def __init__(self, file: Path, line: int | None, message: str):
        self.file, self.line, self.message = str(file), line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


@dataclass(frozen=True)
class Position:
    """Where a named position falls: ``kind`` ``token`` or ``word``, ``index`` (negative
    from the end; ``"last"`` is ``token -1``)."""

    kind: str
    index: int


@dataclass(frozen=True)
class TextRecord:
    """One prompt of a text file and its optional fields (``line``: 1-based, in the file)."""

    line: int
    text: str
    answer: str | None = None
    wrong_answer: str | None = None
    corrupt_text: str | None = None
    positions: Mapping[str, Position] = field(default_factory=dict)

    def fields(self) -> tuple[str, ...]:
        """The optional fields this record has."""
        out = [f for f in FIELD_EXTRAS if getattr(self, f) is not None]
        return tuple(out + (["positions"] if self.positions else []))


def read_records(path: Path) -> list[TextRecord]:
    """Every prompt of a ``.txt`` or ``.jsonl`` file, checked (see the module docstring)."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise PromptError(f"prompt file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise PromptError(f"{path}: prompt files must be .txt (one per line) or .jsonl")
    records: list[TextRecord] = []
    for i, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        if suffix == ".txt":
            records.append(TextRecord(i, line))
            continue
        record = _parse_line(path, i, line)
        if records:
            _check_same_fields(path, records[0], record)
        records.append(record)
    if not records:
        raise PromptFileError(path, None, "no prompts in file")
    return records


def read_texts(path: Path) -> list[str]:
    """The prompt texts of a file (``PromptError`` when unreadable)."""
    return [r.text for r in read_records(path)]


def record_extras(records: list[TextRecord]) -> tuple[str, ...]:
    """The prompt-set extras that these records add to a text prompt set."""
    if not records:
        return ()
    first = records[0]
    out = [FIELD_EXTRAS[f] for f in FIELD_EXTRAS if getattr(first, f) is not None]
    return tuple(out + [POSITION_PREFIX + name for name in first.positions])


def _read_text(path: Path) -> str:
    """The file as text; bytes that are not UTF-8 are a PromptFileError at their line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start : exc.end].hex(" ")
        raise PromptFileError(
            path,
            line,
            f"not valid UTF-8 (bytes {bad} at column {col}): save the file as UTF-8",
        ) from None


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _lone_surrogate(value: Any) -> str | None:
    """The first string in a parsed JSON value that is not valid Unicode text (a lone
    surrogate escape such as ``"\\ud800"``), or None."""
    items = (
        [*value.keys(), *value.values()]
        if isinstance(value, dict)
        else value
        if isinstance(value, list)
        else [value]
    )
    for item in items:
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item
        elif isinstance(item, dict | list):
            found = _lone_surrogate(item)
            if found is not None:
                return found
    return None


def _parse_line(path: Path, i: int, line: str) -> TextRecord:
    try:
        obj = json.loads(line, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise PromptFileError(path, i, f"not valid JSON: {exc.msg}") from exc
    except _DuplicateKey as exc:
        raise PromptFileError(
            path,
            i,
            f"field {str(exc)!r} appears twice in this line: keep one (JSON would keep the last silently)",
        ) from None
    bad = _lone_surrogate(obj)
    if bad is not None:
        raise PromptFileError(
            path,
            i,
            f"{ascii(bad)} holds a lone surrogate escape (\\ud800-\\udfff without its pair), which is no "
            "character: fix the escape or write the character itself",
        )
    if not isinstance(obj, dict):
        raise PromptFileError(path, i, 'expected a JSON object such as {"text": ...}')
    unknown = sorted(k for k in obj if k not in JSONL_FIELDS)
    if unknown:  # never silently dropped
        raise PromptFileError(
            path,
            i,
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"a .jsonl prompt line holds {', '.join(map(repr, JSONL_FIELDS))}",
        )
    if "text" not in obj:
        raise PromptFileError(path, i, 'missing field "text" (the prompt itself)')
    for name in ("text", *FIELD_EXTRAS):
        if name in obj and not isinstance(obj[name], str):
            raise PromptFileError(path, i, f'field "{name}" must be a string, got {obj[name]!r}')
    if "positions" in obj and not isinstance(obj["positions"], dict):
        raise PromptFileError(path, i, 'field "positions" must be an object {name: position}')
    positions = {
        str(k): _position(path, i, str(k), v) for k, v in (obj.get("positions") or {}).items()
    }
    return TextRecord(
        line=i,
        text=obj["text"],
        answer=obj.get("answer"),
        wrong_answer=obj.get("wrong_answer"),
        corrupt_text=obj.get("corrupt_text"),
        positions=positions,
    )


def _position(path: Path, i: int, name: str, value: Any) -> Position:
    """``3`` / ``{"token": 3}`` / ``{"word": 1}`` / ``"last"`` → a :class:`Position`."""
    if not name.isidentifier():
        raise PromptFileError(path, i, f"position name {name!r} must be an identifier")
    if value == "last":
        return Position("token", -1)
    if isinstance(value, int) and not isinstance(value, bool):
        return Position("token", value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, index),) = value.items()
        if kind in POSITION_KINDS and isinstance(index, int) and not isinstance(index, bool):
            return Position(kind, index)
    raise PromptFileError(
        path,
        i,
        f'position {name!r}: expected a token index (3), {{"token": 3}}, {{"word": 1}} or '
        f'"last", got {value!r}',
    )


def _check_same_fields(path: Path, first: TextRecord, record: TextRecord) -> None:
    have, want = set(record.fields()), set(first.fields())
    missing, extra = sorted(want - have), sorted(have - want)
    if missing or extra:
        what = f"missing field {missing[0]!r}" if missing else f"extra field {extra[0]!r}"
        raise PromptFileError(
            path,
            record.line,
            f"{what}: every line of a prompt set has the same fields (line {first.line} has "
            f"{', '.join(map(repr, ('text', *first.fields())))})",
        )
    if list(record.positions) != list(first.positions):
        raise PromptFileError(
            path,
            record.line,
            f"positions {sorted(record.positions)} differ from line {first.line}'s "
            f"{sorted(first.positions)}: every line names the same positions",
        )
