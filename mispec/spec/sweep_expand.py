"""Expanding a spec's ``sweep:`` entries into their points (``mispec.spec.sweep``), every
problem of a sweep located: its key paths (:mod:`mispec.spec.sweep_keys`), values, size, zip
groups and the prompt sets and metrics that must follow it."""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from mispec.errors import Problem, SpecError
from mispec.spec.fields import NAME_PATTERN
from mispec.spec.sweep import MAX_POINTS_DEFAULT, coord_names, dim_names
from mispec.spec.sweep_keys import key_problem
from mispec.spec.yaml_source import SourceMap

_RESERVED = ("zip", "max_points")


def expand(data: Any, source: SourceMap) -> Any:
    """``data`` (a parsed spec) with every swept model entry replaced by its points, the
    positions of ``source`` extended to them; every problem located, in one ``SpecError``."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        return data
    if not any(isinstance(e, dict) and "sweep" in e for e in data["models"].values()):
        return data
    data = copy.deepcopy(data)
    problems: list[Problem] = []
    models: dict[str, Any] = {}
    points_of: dict[str, list[str]] = {}
    for name, entry in data["models"].items():
        if not (isinstance(entry, dict) and "sweep" in entry):
            models[name] = entry
            continue
        found = _Sweep(name, entry, data, source)
        problems += found.problems
        if found.problems:
            continue
        for point_name, point in found.points(set(data["models"]) | set(models)):
            models[point_name] = point
        points_of[name] = list(found.point_names)
        found.copy_positions()
    if problems:
        raise SpecError(problems)
    data["models"] = models
    _retarget_metrics(data, points_of, source)
    return data


def _retarget_metrics(
    data: dict[str, Any], points_of: dict[str, list[str]], src: SourceMap
) -> None:
    """A metric's ``models:`` naming a swept entry names its points; a reference to a swept
    entry as one model (an input's ``model``, a pair, a start) is refused."""
    problems: list[Problem] = []
    metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
    for mname, m in (metrics or {}).items():
        if not isinstance(m, dict):
            continue
        if isinstance(m.get("models"), list):
            m["models"] = [p for n in m["models"] for p in points_of.get(n, [n])]
        for pname, ref in (
            (m.get("inputs") or {}).items() if isinstance(m.get("inputs"), dict) else ()
        ):
            if isinstance(ref, dict) and ref.get("model") in points_of:
                problems.append(
                    src.problem(
                        ("metrics", mname, "inputs", pname, "model"),
                        f"model '{ref['model']}' is a sweep: an input reads one model, not a "
                        "grid (read the metric on each point's own model instead)",
                    )
                )
        pairs = m.get("pairs")
        if isinstance(pairs, dict) and isinstance(pairs.get("models"), list):
            for n in pairs["models"]:
                if n in points_of:
                    problems.append(
                        src.problem(
                            ("metrics", mname, "pairs", "models"),
                            f"model '{n}' is a sweep: a pair compares two single models",
                        )
                    )
    for name, entry in data["models"].items():
        train = entry.get("train") if isinstance(entry, dict) else None
        if not isinstance(train, dict):
            continue
        refs: list[tuple[Any, ...]] = [("init_from",)]
        refs += [("init", i, "from") for i in range(len(train.get("init") or []))]
        for path in refs:
            node: Any = train
            for part in path:
                node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
            if isinstance(node, dict) and node.get("model") in points_of:
                problems.append(
                    src.problem(
                        ("models", name, "train", *path, "model"),
                        f"model '{node['model']}' is a sweep: a model starts from one checkpoint",
                    )
                )
    if problems:
        raise SpecError(problems)


def _has(node: Any, part: Any) -> bool:
    return part in node if isinstance(node, dict) else isinstance(part, int) and part < len(node)


class _Sweep:
    """One swept entry: its keys checked, its grid worked out."""

    def __init__(self, name: str, entry: dict[str, Any], data: dict[str, Any], src: SourceMap):
        self.name, self.entry, self.data, self.src = name, entry, data, src
        self.where = ("models", name, "sweep")
        self.problems: list[Problem] = []
        self.groups: list[list[str]] = []
        self.values: dict[str, list[Any]] = {}
        self.point_names: list[str] = []
        self.tied: dict[str, list[str]] = {}  # prompt set -> swept task_args keys it follows
        self._check()

    def _problem(self, path: tuple[Any, ...], message: str, at_key: bool = False) -> None:
        self.problems.append(self.src.problem(path, message, at_key=at_key))

    def _check(self) -> None:
        sweep, train = self.entry["sweep"], self.entry.get("train")
        if not isinstance(train, dict):
            self._problem(self.where, "only a train: model can be swept", at_key=True)
            return
        if not isinstance(sweep, dict) or not sweep:
            self._problem(
                self.where, "sweep is a mapping of key paths under train to lists of values"
            )
            return
        for key, values in sweep.items():
            if key in _RESERVED:
                continue
            path = (*self.where, key)
            message = key_problem(str(key))
            if message is not None:
                self._problem(path, message, at_key=True)
            elif not isinstance(values, list) or not values:
                self._problem(path, "a swept key needs a non-empty list of values")
            elif len({repr(v) for v in values}) != len(values):
                self._problem(path, "a value is repeated")
            else:
                self.values[str(key)] = values
        self._check_zip(sweep.get("zip"))
        if self.problems:
            return
        self._check_size(sweep.get("max_points"))
        self._check_prompts(train)

    def _check_zip(self, zipped: Any) -> None:
        grouped: set[str] = set()
        for i, group in enumerate(zipped or []) if isinstance(zipped, list) else ():
            path = (*self.where, "zip", i)
            if not (isinstance(group, list) and len(group) >= 2):
                self._problem(path, "each zip group is a list of two or more swept key paths")
                continue
            unknown = [k for k in group if k not in self.values]
            if unknown:
                self._problem(path, f"'{unknown[0]}' is not a key of this sweep")
            elif grouped & set(group):
                self._problem(path, "a key is zipped in two groups")
            elif len({len(self.values[k]) for k in group}) != 1:
                self._problem(path, "zipped keys need lists of one length")
            else:
                grouped |= set(group)
                self.groups.append([str(k) for k in group])
        if zipped is not None and not isinstance(zipped, list):
            self._problem((*self.where, "zip"), "zip is a list of lists of swept key paths")
        self.groups = [[k] for k in self.values if k not in grouped] + self.groups

    def _check_size(self, max_points: Any) -> None:
        size = 1
        for g in self.groups:
            size *= len(self.values[g[0]])
        if max_points is not None and (type(max_points) is not int or max_points < 1):
            self._problem((*self.where, "max_points"), "max_points is a positive integer")
        elif max_points is None and size > MAX_POINTS_DEFAULT:
            self._problem(
                self.where,
                f"the grid has {size} points, more than {MAX_POINTS_DEFAULT}: set "
                f"'max_points: {size}' if you mean it",
                at_key=True,
            )
        elif max_points is not None and size > max_points:
            self._problem(
                (*self.where, "max_points"),
                f"the grid has {size} points, more than max_points {max_points}",
            )

    def _check_prompts(self, train: dict[str, Any]) -> None:
        """Tie the prompt sets generated by the model's task to the swept task arguments;
        refuse what cannot follow them."""
        args = [k.split(".", 1)[1] for k in self.values if k.startswith("task_args.")]
        if not args:
            return
        task = train.get("task")
        prompts = self.data.get("prompts") if isinstance(self.data.get("prompts"), dict) else {}
        metrics = self.data.get("metrics") if isinstance(self.data.get("metrics"), dict) else {}
        used = set()
        for mname, m in (metrics or {}).items():
            if not isinstance(m, dict):
                continue
            on = m.get("models")
            if on is not None and (not isinstance(on, list) or self.name not in on):
                continue
            if isinstance(m.get("prompts"), str):
                used.add(m["prompts"])
            margs: dict[str, Any] = m["args"] if isinstance(m.get("args"), dict) else {}
            for a in args:
                if a in margs:
                    self._problem(
                        ("metrics", mname, "args", a),
                        f"metric '{mname}' has its own '{a}', which does not follow the sweep "
                        f"of task_args.{a} on model '{self.name}' (sweep a model whose metrics "
                        "take it from the model, or write one entry per value)",
                    )
        for pname in sorted(used):
            p = (prompts or {}).get(pname)
            if not isinstance(p, dict) or not isinstance(p.get("args"), dict):
                continue
            if p.get("generator") == task:
                self.tied[pname] = args
                continue
            for a in args:
                if a in p["args"]:
                    self._problem(
                        ("prompts", pname, "args", a),
                        f"prompt set '{pname}' (generator '{p.get('generator')}') has its own "
                        f"'{a}', which cannot follow the sweep of task_args.{a} on model "
                        f"'{self.name}' (only a prompt set of the model's task "
                        f"'{task}' follows it)",
                    )

    # ------------------------------------------------------------------ the grid
    def grid(self) -> list[dict[str, Any]]:
        """Every point's values (key path -> value), the first key varying slowest."""
        axes = [
            [{k: self.values[k][i] for k in g} for i in range(len(self.values[g[0]]))]
            for g in self.groups
        ]
        return [
            {k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)
        ]

    def points(self, taken: set[str]) -> list[tuple[str, dict[str, Any]]]:
        dims, labels = dim_names(self.groups), coord_names(self.groups)
        out = []
        for index, values in enumerate(self.grid()):
            name = _point_name(self.name, values, labels, index, taken)
            taken.add(name)
            entry = copy.deepcopy({k: v for k, v in self.entry.items() if k != "sweep"})
            for key, value in values.items():
                _set_path(entry["train"], key.split("."), value)
            copies = {p: _point_name(p, {}, {}, index, set(), suffix=name) for p in self.tied}
            for pname, new in copies.items():
                prompt = copy.deepcopy(self.data["prompts"][pname])
                for a in self.tied[pname]:
                    prompt["args"][a] = values[f"task_args.{a}"]
                self.data["prompts"][new] = prompt
            entry["sweep_point"] = {
                "of": self.name,
                "index": index,
                "values": values,
                "dims": {k: dims[k] for k in values},
                "prompts": copies,
            }
            self.point_names.append(name)
            out.append((name, entry))
        self._copies = [(n, v) for n, v in zip(self.point_names, self.grid(), strict=True)]
        return out

    def copy_positions(self) -> None:
        """A point's keys are located where the swept entry wrote them; a swept value where
        the sweep lists it."""
        pos = self.src.positions
        base = ("models", self.name)
        own = [(p, v) for p, v in pos.items() if p[:2] == base]
        for name, values in self._copies:
            for p, v in own:
                pos[("models", name, *p[2:])] = v
            for key, value in values.items():
                i = self.values[key].index(value)
                at = pos.get((*self.where, key, i)) or pos.get((*self.where, key))
                if at is not None:
                    pos[("models", name, "train", *key.split("."))] = at


def _set_path(node: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {} if child is None else child
            node[part] = child
        node = child
    node[parts[-1]] = value


def _point_name(
    base: str,
    values: dict[str, Any],
    dims: dict[str, str],
    index: int,
    taken: set[str],
    suffix: str | None = None,
) -> str:
    """``base.dim_value.dim_value``: readable, valid as a spec name (else ``base.point<i>``)."""
    parts = [f"{dims[k]}_{_short(v)}" for k, v in values.items()]
    name = ".".join([base, *parts]) if suffix is None else f"{base}.{suffix}"
    if len(name) > 100 or not re.match(NAME_PATTERN, name) or name in taken:
        name = f"{base}.point{index}"
    return name


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)
