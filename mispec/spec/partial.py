"""A spec's structural problems and, beside them, the part of it that is sound.

``read_spec`` stops at the schema: one broken key and no name or reference is checked, so a
spec used to be reported in two passes (the schema's problems, then, once fixed, the
cross-checks'). :func:`validate_partial` sets the broken parts aside instead and validates
what is left, so ``mispec.validation.load.load_spec`` can cross-check it in the same pass:

* an unknown key is dropped (the entry around it is checked as if it were not there);
* any other problem inside ``models.X``, ``prompts.X`` or ``metrics.X`` sets that whole entry
  aside (``set_aside``): its problem says so, and the checks of what refers to it wait;
* a problem elsewhere (``name``, a required section) leaves nothing to cross-check.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mispec.errors import Problem, SpecError
from mispec.spec.load import LoadedSpec, _data_path, _read_with_includes, validate_data
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import SourceMap, parse_yaml

SECTIONS = ("models", "prompts", "metrics")
_OPTIONAL_TOP = ("description", "include", "cache")  # dropped whole when broken
_ROUNDS = 4  # setting parts aside can reveal errors pydantic did not reach (union branches)


def read_spec_partial(
    path: str | Path,
) -> tuple[LoadedSpec | None, list[Problem], dict[str, set[str]]]:
    """``read_spec``, with the sound part of a spec the schema rejects (see the module doc)."""
    path = Path(path)
    data, source = _read_with_includes(path, depth=0, seen=())
    spec, problems, set_aside = validate_partial(data, source)
    if spec is None:
        return None, problems, set_aside
    text = path.read_text("utf-8")
    return LoadedSpec(spec=spec, path=path.resolve(), source=source, text=text), problems, set_aside


def read_spec_text_partial(
    text: str, file: str = "<spec>"
) -> tuple[Spec | None, SourceMap, list[Problem], dict[str, set[str]]]:
    """``read_spec_text``, with the sound part of a spec the schema rejects."""
    data, source = parse_yaml(text, file)
    spec, problems, set_aside = validate_partial(data, source)
    return spec, source, problems, set_aside


def validate_partial(
    data: Any, source: SourceMap
) -> tuple[Spec | None, list[Problem], dict[str, set[str]]]:
    """``(spec, problems, set_aside)``: the spec, valid, when ``problems`` is empty; else the
    schema's problems and the spec without the parts they are in (None when nothing sound is
    left), with the entries set aside by section."""
    try:
        return validate_data(data, source), [], {}
    except SpecError as exc:
        problems = list(exc.problems)
    if not isinstance(data, dict) or data.get("mispec") != 1:
        return None, problems, {}
    from mispec.spec.sweep import expand_sweeps

    with contextlib.suppress(SpecError):  # a sweep's points, as validate_data checked them
        data = expand_sweeps(data, source)
    pruned = copy.deepcopy(data)
    set_aside: dict[str, set[str]] = {}
    for _ in range(_ROUNDS):
        try:
            spec = Spec.model_validate(pruned)
        except ValidationError as exc:
            paths = [(e["type"], _data_path(tuple(e["loc"]), pruned)) for e in exc.errors()]
            if not any([_set_aside(pruned, kind, path, set_aside) for kind, path in paths]):
                return None, problems, set_aside
            continue
        return spec, [_say_set_aside(p, set_aside) for p in problems], set_aside
    return None, problems, set_aside


def _set_aside(
    data: dict[str, Any], kind: str, path: tuple[Any, ...], out: dict[str, set[str]]
) -> bool:
    """Drop what ``path`` is in (a key when unknown, else its entry); whether anything went."""
    if kind == "extra_forbidden" and len(path) > 2:
        node: Any = data
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            del node[path[-1]]
            return True
    section = data.get(path[0]) if path else None
    if len(path) >= 2 and path[0] in SECTIONS and isinstance(section, dict) and path[1] in section:
        del section[path[1]]
        out.setdefault(str(path[0]), set()).add(str(path[1]))
        return True
    if path[:1] and path[0] in _OPTIONAL_TOP and path[0] in data:
        del data[path[0]]
        return True
    return False


def _say_set_aside(problem: Problem, set_aside: dict[str, set[str]]) -> Problem:
    """A problem in an entry that was set aside says what waits on it."""
    path = problem.path
    if len(path) >= 2 and str(path[1]) in set_aside.get(str(path[0]), ()):
        note = (
            f" ({path[0]}.{path[1]} is set aside: what refers to it is checked once this is fixed)"
        )
        return Problem(problem.message + note, path, problem.file, problem.line, problem.col)
    return problem


def blocks_entry(problem: Problem) -> bool:
    """Whether a schema problem keeps its entry from the checks that build things: an unknown
    key does not (the entry is checked without it, as ``_set_aside`` dropped it)."""
    return not problem.message.startswith("unknown key '")
