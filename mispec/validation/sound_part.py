"""The part of a spec its problems leave sound, for the checks that build things.

``preflight.check_built`` builds prompt sets, reads training configs and follows dims along
metric inputs: it needs valid names and args. It used to run only on a spec without any
other problem, so a spec was reported in two passes. It now runs on the sound part: the spec
without every entry a problem points into (or the schema set aside), and without every
metric that reads one of them (through ``prompts``, ``inputs``, ``models`` or ``pairs``),
transitively. What is left out is named (``waiting``): it is checked once those are fixed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mispec.errors import Problem
from mispec.spec.metrics import InputRef, MetricSpec
from mispec.spec.schema import Spec

SECTIONS = ("models", "prompts", "metrics")


def sound_part(
    spec: Spec, problems: Iterable[Problem], set_aside: dict[str, set[str]] | None = None
) -> tuple[Spec | None, list[str]]:
    """``(sub_spec, waiting)``: ``spec`` without the entries with problems and what reads
    them (None when no model is left, or a problem is outside every entry), and
    the ``section.name`` of each entry left out."""
    bad = {s: set((set_aside or {}).get(s, ())) for s in SECTIONS}
    for p in problems:
        if len(p.path) >= 2 and p.path[0] in SECTIONS:
            bad[str(p.path[0])].add(str(p.path[1]))
        else:
            return None, []  # a problem of the whole spec: nothing is sound
    own = {s: set(names) for s, names in bad.items()}  # those with a problem of their own
    models = {n: m for n, m in spec.models.items() if n not in bad["models"]}
    for name, entry in list(models.items()):  # an entry naming a bad one (init_from)
        if _names(entry.model_dump(mode="json")) & bad["models"]:
            del models[name]
            bad["models"].add(name)
    prompts = {n: p for n, p in spec.prompts.items() if n not in bad["prompts"]}
    metrics = dict(spec.metrics)
    changed = True
    while changed:
        changed = False
        for name, m in list(metrics.items()):
            if name in bad["metrics"] or _reads_bad(m, bad):
                del metrics[name]
                bad["metrics"].add(name)
                changed = True
    sound = bool(models)  # with no metric left, the models' own build checks still run
    waiting = [  # left out for what they read, not for a problem of their own
        f"{s}.{n}"
        for s in SECTIONS
        for n in getattr(spec, s)
        if n not in own[s] and (n in bad[s] or not sound)
    ]
    if not sound:
        return None, waiting
    update = {"models": models, "prompts": prompts, "metrics": metrics}
    return spec.model_copy(update=update), waiting


def _reads_bad(m: MetricSpec, bad: dict[str, set[str]]) -> bool:
    if m.prompts is not None and m.prompts in bad["prompts"]:
        return True
    for ref in m.inputs.values():
        name = ref.metric if isinstance(ref, InputRef) else ref
        if name in bad["metrics"]:
            return True
        if isinstance(ref, InputRef) and ref.model is not None and ref.model in bad["models"]:
            return True
    chosen = set(m.models or ())
    if m.pairs is not None:
        chosen |= _names(m.pairs.model_dump(mode="json"))
    return bool(chosen & bad["models"])


def _names(value: Any) -> set[str]:
    """Every string anywhere in ``value`` (a dumped entry): the names it may refer to."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*map(_names, value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*map(_names, value)) if value else set()
    return set()


def without_set_aside(
    problems: list[Problem], set_aside: dict[str, set[str]] | None
) -> list[Problem]:
    """Leave out a reference's problem when what it names was set aside by the schema."""
    names = {n for section in (set_aside or {}).values() for n in section}
    return [p for p in problems if not any(f"'{n}'" in p.message for n in names)]
