"""What ``@metric`` (:mod:`mispec.metrics.core`) checks when a function is decorated: dims
in the vocabulary, dims/check/units/bracket rules that take only the metric's args and
inputs, ``input_dims`` and ``indexes`` that name what exists, and the metric's kind, inferred
from what its parameters read. Each problem is a ``TypeError`` naming the metric.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mispec.metrics.record import ArgInfo, Bracket, HookSpec, InputDims, UnitsRule, named_params
from mispec.metrics.vocabulary import DIMS, INDEX_AXES, MetricKind


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' annotations as types, whether or not the module has ``from __future__
    import annotations`` (an annotation that names what is not importable at run time, e.g.
    under ``TYPE_CHECKING``, leaves the whole function unresolved: {})."""
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def annotation_text(annotation: Any) -> str:
    """An annotation as the text a user reads (``int``, ``list[int] | None``)."""
    if isinstance(annotation, str):
        return annotation
    if annotation is inspect.Parameter.empty:
        return str(annotation)
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def check_indexes(
    name: str, indexes: Mapping[str, str | tuple[str, ...]], args: set[str]
) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for arg, axes in indexes.items():
        axes = (axes,) if isinstance(axes, str) else tuple(axes)
        if arg not in args:
            raise TypeError(f"metric {name}: indexes names '{arg}', which is not an arg")
        bad = [a for a in axes if a not in INDEX_AXES]
        if bad or not axes:
            raise TypeError(
                f"metric {name}: indexes['{arg}'] must name axes among {sorted(INDEX_AXES)}"
            )
        out[arg] = axes
    return out


def units_text(rule: UnitsRule, args: tuple[ArgInfo, ...]) -> str:
    """A units rule's text for the catalogue: its docstring, else its value at the defaults."""
    doc = inspect.getdoc(rule)
    if doc:
        return " ".join(doc.split())
    defaults = {a.name: a.default for a in args if not a.required}
    return str(rule(**{p: defaults[p] for p in named_params(rule, defaults)}))


def check_vocabulary(name: str, what: str, dims: Sequence[str]) -> None:
    bad = [d for d in dims if d not in DIMS]
    if bad:
        raise TypeError(f"metric {name}: {what} {bad} not in the vocabulary {DIMS}")


def check_dims_rule(
    name: str, rule: Callable[..., Any], allowed: set[str], what: str = "dims", leading: int = 0
) -> None:
    """A dims (or check, units, bracket) function is a named function taking, by keyword,
    only args and inputs (the others: only args), after its ``leading`` positional ones."""
    if getattr(rule, "__name__", "") == "<lambda>":
        raise TypeError(
            f"metric {name}: {what} must be a named function, not a lambda (the plan is pickled "
            "for distributed executors, and a lambda cannot be)"
        )
    for p in list(inspect.signature(rule).parameters.values())[leading:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.kind is p.POSITIONAL_ONLY or p.name not in allowed:
            raise TypeError(
                f"metric {name}: the {what} function's parameter '{p.name}' is not an arg"
                + (" or input" if what == "dims" else "")
                + f" of the metric (those are: {sorted(allowed)})"
            )


def check_bracket(
    name: str, bracket: Bracket, kind: str, inputs: tuple[str, ...], args: set[str]
) -> None:
    """A bracket belongs to a reduction of one series and takes the steps, the values and
    then args of the metric only."""
    if kind != "reduction" or len(inputs) != 1:
        raise TypeError(f"metric {name}: bracket needs a reduction (reduces='step') of one input")
    params = list(inspect.signature(bracket).parameters.values())
    if len(params) < 2 or any(p.kind is p.KEYWORD_ONLY for p in params[:2]):
        raise TypeError(f"metric {name}: bracket must take (steps, values, **args)")
    check_dims_rule(name, bracket, args, what="bracket", leading=2)


def check_input_dims(
    name: str, param: str, need: InputDims, inputs: tuple[str, ...], args: set[str]
) -> None:
    if param not in inputs:
        raise TypeError(f"metric {name}: input_dims names '{param}', which is not an input")
    if not isinstance(need, InputDims):
        raise TypeError(f"metric {name}: input_dims['{param}'] must be an InputDims")
    if bool(need.dims) == (need.arg is not None):
        raise TypeError(f"metric {name}: input_dims['{param}'] needs either dims or an arg")
    if need.arg is not None and need.arg not in args:
        raise TypeError(
            f"metric {name}: input_dims['{param}'] reads arg '{need.arg}', which is not an "
            f"arg of the metric (those are: {sorted(args)})"
        )
    check_vocabulary(name, f"input_dims['{param}']", need.dims)


def infer_kind(
    name: str,
    context: frozenset[str],
    hooks: HookSpec,
    inputs: tuple[str, ...],
    reduces: str | None,
) -> MetricKind:
    if reduces is not None:
        if reduces != "step":
            raise TypeError(f"metric {name}: only reduces='step' is supported")
        return "reduction"
    if "bridge" in context and "acts" in context:
        raise TypeError(
            f"metric {name}: takes both 'acts' and 'bridge'; a metric reads either the "
            "shared forward pass ('acts' with hooks=...) or the live model ('bridge', which "
            "runs its own passes: bridge.run_with_cache(...)), never both"
        )
    if "bridge" in context:
        return "intervention" if "prompts" in context else "weights"
    if "acts" in context:
        if not hooks:
            raise TypeError(f"metric {name}: takes 'acts' but declares no hooks")
        return "activation"
    if inputs:
        return "derived"
    raise TypeError(f"metric {name}: reads nothing (no acts, bridge or inputs)")
