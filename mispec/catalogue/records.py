"""The catalogue's records (:class:`Entry`, :class:`ArgEntry`) and how they are read from
what a registry holds: a docstring's first paragraph, a signature's or a pydantic model's
arguments with their types as a reader writes them, the module a name comes from."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ArgEntry:
    """One spec argument: its name, type as written in the signature, and default
    (``required`` when there is none; a default that is not JSON is shown as its repr)."""

    name: str
    type: str
    default: Any = None
    required: bool = False
    doc: str = ""  # what it means: its entry in the docstring's ``Args:`` section


@dataclass(frozen=True)
class Entry:
    """One registered name: what it is (``summary``, the docstring's first paragraph), its
    spec arguments, and for metrics what it returns (``dims`` without the ``seed``/``step``
    that runs add; ``None`` when they depend on the spec, then ``dims_note`` says how)."""

    kind: str
    name: str
    summary: str
    args: tuple[ArgEntry, ...] = ()
    origin: str = "built-in"  # or the plugin's module
    dims: tuple[str, ...] | None = None
    dims_note: str = ""
    units: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["args"] = [asdict(a) for a in self.args]
        out["dims"] = list(self.dims) if self.dims is not None else None
        return out


def summary_of(obj: Any) -> str:
    """The first paragraph of ``obj``'s docstring, on one line."""
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def arg_docs(obj: Any) -> dict[str, str]:
    """The meaning of each argument from the ``Args:`` section of ``obj``'s docstring
    (Google style: ``name: meaning``, continued on deeper-indented lines), each on one line."""
    lines = (inspect.getdoc(obj) or "").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:")), None
    )
    if start is None:
        return {}
    base = len(lines[start]) - len(lines[start].lstrip())
    out: dict[str, list[str]] = {}
    indent = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth <= base:
            break  # the section ended
        indent = depth if indent is None else indent
        head, colon, rest = line.strip().partition(":")
        name = head.split("(")[0].strip().strip("`*")
        if depth == indent and colon and name.isidentifier():
            out[name] = [rest.strip()]
        elif out:
            out[next(reversed(out))].append(line.strip())
    return {name: " ".join(" ".join(parts).split()) for name, parts in out.items()}


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _type_text(annotation: Any) -> str:
    """An annotation as a reader writes it: ``int | Literal['auto']``, ``list[str]`` (the
    constraints of ``Annotated`` left out; a string annotation as written)."""
    import types
    import typing

    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, str):
        return annotation
    if annotation is type(None) or annotation is None:
        return "None"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_text(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_text(a) for a in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def arg_entries(
    params: Iterable[tuple[str, Any, Any]], docs: dict[str, str] | None = None
) -> tuple[ArgEntry, ...]:
    """``(name, default or Parameter.empty, annotation)`` triples as ``ArgEntry`` records
    (``docs``: each name's meaning, from :func:`arg_docs`)."""
    docs = docs or {}
    out = []
    for name, default, annotation in params:
        required = default is inspect.Parameter.empty
        out.append(
            ArgEntry(
                name,
                _type_text(annotation),
                None if required else _json_default(default),
                required,
                docs.get(name, ""),
            )
        )
    return tuple(out)


def origin_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    return "built-in" if module == "mispec" or module.startswith("mispec.") else module


def pydantic_args(model: Any, skip: Iterable[str] = ()) -> tuple[ArgEntry, ...]:
    """The fields of a pydantic model class as arguments (``skip``: fields to leave out), each
    with its meaning: the field's ``description``, else its entry in the ``Args:`` section of
    the docstring of the model or of the base class that declares it."""
    if model is None:
        return ()
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):  # a subclass's entry wins over its base's
        docs.update(arg_docs(klass) if vars(klass).get("__doc__") else {})
    out = []
    for name, f in model.model_fields.items():
        if name in skip:
            continue
        required = f.is_required()
        default: Any = f.default if f.default is not PydanticUndefined else None
        if f.default_factory is not None:
            default = f.default_factory()  # type: ignore[call-arg]
        if isinstance(default, BaseModel):
            default = default.model_dump()
        out.append(
            ArgEntry(
                name,
                _type_text(f.annotation),
                None if required else _json_default(default),
                required,
                " ".join((f.description or docs.get(name, "")).split()),
            )
        )
    return tuple(out)
