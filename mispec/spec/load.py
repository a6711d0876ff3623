"""``read_spec``: YAML file → a ``Spec`` valid against the schema (or one ``SpecError`` listing every
problem, each pointing at ``file:line:col``)."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mispec.errors import Problem, SpecError
from mispec.hashing import canonical_json, content_key
from mispec.registry import did_you_mean
from mispec.spec.model_entry import EntryUnion
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import KeyPath, SourceMap, parse_yaml, read_yaml_file

_MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec plus where it came from: the folder its relative paths resolve
    against, the text that was read, and the positions of every key."""

    spec: Spec
    path: Path
    source: SourceMap
    text: str

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def spec_hash(self) -> str:
        return content_key(self.spec.model_dump(mode="json"))


def read_spec(path: str | Path) -> LoadedSpec:
    """Parse and merge ``include:``s and validate the structure (the schema). Names and
    references are cross-checked one floor up: ``mispec.validation.load.load_spec``."""
    path = Path(path)
    data, source = _read_with_includes(path, depth=0, seen=())
    spec = validate_data(data, source)
    return LoadedSpec(spec=spec, path=path.resolve(), source=source, text=path.read_text("utf-8"))


def read_spec_text(text: str, file: str = "<spec>") -> tuple[Spec, SourceMap]:
    """Spec text (no includes) validated against the schema, with its key positions."""
    data, source = parse_yaml(text, file)
    return validate_data(data, source), source


def _read_with_includes(path: Path, depth: int, seen: tuple[Path, ...]) -> tuple[Any, SourceMap]:
    data, source = read_yaml_file(path)
    if not isinstance(data, dict):
        raise SpecError(source.problem((), "a spec must be a mapping of keys (mispec, name, ...)"))
    includes = data.get("include") or []
    if not isinstance(includes, list):
        raise SpecError(source.problem(("include",), "must be a list of spec files"))
    merged: dict[str, Any] = {}
    merged_source = SourceMap(root_file=str(path))
    for i, inc in enumerate(includes):
        inc_path = (path.parent / str(inc)).resolve()
        if inc_path in seen or inc_path == path.resolve():
            raise SpecError(source.problem(("include", i), f"include cycle through {inc_path}"))
        if depth >= _MAX_INCLUDE_DEPTH:
            raise SpecError(source.problem(("include", i), "includes nested too deeply"))
        if not inc_path.is_file():
            what = (
                "included file not found"
                if not inc_path.exists()
                else "include names a folder, not a spec file"
                if inc_path.is_dir()
                else "include names a device or a pipe, not a spec file"
            )
            raise SpecError(source.problem(("include", i), f"{what}: {inc_path}"))
        inc_data, inc_source = _read_with_includes(inc_path, depth + 1, (*seen, path.resolve()))
        _merge_into(merged, inc_data)
        merged_source.positions.update(inc_source.positions)
    _merge_into(merged, data)
    merged_source.positions.update(source.positions)
    return merged, merged_source


def _merge_into(base: dict[str, Any], over: dict[str, Any]) -> None:
    """Later files win per top-level entry; named sections (models, prompts, metrics, cache)
    merge by name, so an including spec adds or replaces entries."""
    for key, value in over.items():
        if key == "include":
            continue
        if key in ("models", "prompts", "metrics", "cache") and isinstance(value, dict):
            section = base.setdefault(key, {})
            if isinstance(section, dict):
                section.update(value)
                continue
        base[key] = value


def validate_data(data: Any, source: SourceMap) -> Spec:
    if isinstance(data, dict) and "mispec" not in data:
        raise SpecError(
            source.problem((), "missing `mispec: 1` (the spec format version) at the top")
        )
    if isinstance(data, dict) and (type(data.get("mispec")) is not int or data["mispec"] != 1):
        raise SpecError(
            source.problem(
                ("mispec",),
                f"unsupported spec format {data.get('mispec')!r}; this mispec reads format 1",
            )
        )
    from mispec.spec.sweep import expand_sweeps

    data = expand_sweeps(data, source)
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        from mispec.spec.sweep import relocate

        problems = problems_from(exc, data, source)
        raise SpecError(relocate(problems, data.get("models") or {}, source)) from None


def problems_from(
    exc: ValidationError, data: Any, source: SourceMap, root: Any = None
) -> list[Problem]:
    """pydantic's errors as located problems (``file:line:col: key.path: message``)."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = _data_path(loc, data)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = path[-1]
            allowed = _allowed_keys(loc[:-1], root or Spec)
            problems.append(
                source.problem(
                    path, f"unknown key '{key}'{did_you_mean(str(key), allowed)}", at_key=True
                )
            )
        elif kind == "missing":
            problems.append(
                source.problem(
                    path[:-1] if path[-1:] == loc[-1:] else path,
                    f"missing required key '{loc[-1]}'",
                    at_key=True,
                )
            )
        else:
            msg = err["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            if kind not in ("value_error", "selector", "assertion_error") and "input" in err:
                shown = canonical_json(err["input"])
                msg += f" (got {shown if len(shown) < 60 else shown[:57] + '...'})"
            problems.append(source.problem(path, msg))
    # One message per location is enough (unions can repeat themselves).
    unique: dict[tuple[Any, ...], Problem] = {}
    for p in problems:
        unique.setdefault((p.path, p.message), p)
    return sorted(unique.values(), key=lambda p: (p.file or "", p.line or 0, p.col or 0))


def _data_path(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """Drop union tags and model names from a pydantic ``loc``: keep what indexes the data."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif (
            isinstance(node, dict)
            and isinstance(part, str)
            and part[:1].islower()
            and not part.startswith(("literal", "function"))
        ):
            path.append(part)  # a missing key
            node = None
    return tuple(path)


def _allowed_keys(loc: tuple[Any, ...], root: Any) -> list[str]:
    """The keys the schema allows at ``loc`` (for did-you-mean on unknown keys)."""
    tp: Any = root
    for part in loc:
        tp = _step(tp, part)
        if tp is None:
            return []
    model = _strip(tp, None)
    return list(model.model_fields) if _is_model(model) else []


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _strip(tp: Any, tag: Any) -> Any:
    """Remove Annotated/Optional; in a union pick the member named ``tag`` or the only model."""
    import types

    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            base, *metadata = typing.get_args(tp)
            unions = [m for m in metadata if isinstance(m, EntryUnion)]
            tp = unions[0].entries.union() if unions else base
        elif origin in (typing.Union, types.UnionType):
            members = [_strip(a, None) for a in typing.get_args(tp) if a is not type(None)]
            named = [m for m in members if _is_model(m) and m.__name__ == tag]
            containers = [
                m for m in members if _is_model(m) or typing.get_origin(m) in (dict, list)
            ]
            if named:
                return named[0]
            return containers[0] if len(containers) == 1 else None
        else:
            return tp


def _step(tp: Any, part: Any) -> Any:
    t = _strip(tp, part)
    if _is_model(t):
        field = t.model_fields.get(part)
        if field is not None:
            return field.annotation
        return t if t.__name__ == part else None
    origin = typing.get_origin(t)
    if origin is dict:
        return typing.get_args(t)[1]
    if origin in (list, tuple):
        return typing.get_args(t)[0]
    return None
