"""What a spec names, checked where it is named: a registered name or ``module:function``
(:func:`lookup`, with a did-you-mean) and the arguments given to it (:func:`check_args`:
unknown ones, missing required ones, values of the wrong type — never coerced across types).

Validation uses these for metrics, prompt generators and plugin sources; a model source uses
them for what its entry names (the ``train:`` source: its task and ``task_args``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from mispec.errors import Problem, UserError
from mispec.registry import Registry, did_you_mean
from mispec.spec.yaml_source import KeyPath, SourceMap


def lookup(
    registry: Registry[Any],
    name: str,
    path: KeyPath,
    source: SourceMap,
    problems: list[Problem],
    base_dir: Path | None = None,
) -> Any:
    """The item ``name`` names in ``registry`` (a ``module:function`` imported beside
    ``base_dir``), or None with the reason added to ``problems`` at ``path``: unknown (with a
    did-you-mean), a module that does not import, or a plugin that raised while importing."""
    try:
        item = registry.get_or_none(name, base_dir)
    except UserError as exc:  # a module:function reference that does not import
        problems.append(source.problem(path, str(exc)))
        return None
    except Exception as exc:  # the plugin module itself raised while being imported
        problems.append(
            source.problem(
                path, f"importing the plugin '{name}' failed: {type(exc).__name__}: {exc}"
            )
        )
        return None
    if item is None:
        problems.append(
            source.problem(
                path, f"unknown {registry.kind} '{name}'{did_you_mean(name, registry.names())}"
            )
        )
    return item


def check_args(
    given: Mapping[str, Any],
    params: Mapping[str, Any],  # name -> (default or inspect.Parameter.empty, annotation str)
    globals_: Mapping[str, Any],
    path: KeyPath,
    source: SourceMap,
    problems: list[Problem],
    what: str,
) -> None:
    """Unknown args (did-you-mean), missing required args, and values of the wrong type."""
    for name, value in given.items():
        if name not in params:
            problems.append(
                source.problem(
                    (*path, name),
                    f"{what} takes no argument '{name}'{did_you_mean(name, list(params))}",
                    at_key=True,
                )
            )
            continue
        _default, annotation = params[name]
        tp = _eval_annotation(annotation, globals_)
        adapter = _adapter(tp)
        if adapter is not None:
            try:
                got = adapter.validate_python(value, strict=False)
            except ValidationError as exc:
                msg = exc.errors(include_url=False)[0]["msg"]
                problems.append(source.problem((*path, name), f"{msg} (got {value!r})"))
            else:
                coerced = _coerced(value, got)
                if coerced:
                    problems.append(source.problem((*path, name), f"{coerced} (got {value!r})"))
    for name, (default, _ann) in params.items():
        if default is inspect.Parameter.empty and name not in given:
            problems.append(source.problem(path, f"{what} needs argument '{name}'", at_key=True))


def _adapter(tp: Any) -> TypeAdapter[Any] | None:
    """A validator for an arg's type, None for no type or one pydantic cannot check (a
    tensor, a class of the plugin's own): the metric checks those itself."""
    if tp is None:
        return None
    try:
        return TypeAdapter(tp)
    except Exception:
        return None


def _coerced(value: Any, got: Any) -> str | None:
    """Why a value the lax validation accepted was only accepted by coercion across types
    (``true`` read as 1, ``"3"`` as 3, ``1`` as True), None when it kept its type."""
    if isinstance(value, bool) and not isinstance(got, bool):
        return f"expected {type(got).__name__}, not a boolean"
    if isinstance(value, str) and not isinstance(got, str):
        return f"expected {type(got).__name__}, not a string"
    if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(got, bool):
        return "expected a boolean (true or false), not a number"
    if isinstance(value, list):
        return next(
            (why for v, g in zip(value, got, strict=False) if (why := _coerced(v, g))), None
        )
    return None


_SIMPLE_NAMES = {
    "int",
    "float",
    "str",
    "bool",
    "None",
    "list",
    "dict",
    "tuple",
    "Literal",
    "Any",
    "Sequence",
    "Mapping",
    "Optional",
}


def _eval_annotation(annotation: Any, globals_: Mapping[str, Any]) -> Any:
    if not isinstance(annotation, str):
        return None if annotation is inspect.Parameter.empty else annotation
    if annotation in ("", "inspect._empty", "_empty"):
        return None
    import re

    names = set(
        re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r"'[^']*'|\"[^\"]*\"", "", annotation))
    )
    if not names <= _SIMPLE_NAMES:  # never evaluate annotations that could import torch
        return None
    try:
        import typing

        return eval(annotation, {**vars(typing), **dict(globals_)})  # noqa: S307 (own code's annotations)
    except Exception:
        return None


def fn_params(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s named parameters as :func:`check_args` reads them: name -> (default or
    ``inspect.Parameter.empty``, annotation)."""
    return {
        name: (p.default, p.annotation)
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
