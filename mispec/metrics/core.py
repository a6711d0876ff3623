"""The metric API: plain functions plus one ``@metric`` decorator that records, in one frozen
``MetricDef``, what the function reads, what it returns and its version.

What a metric reads is told by its parameter names (Hamilton-style):

* ``acts``    — ``Activations``: the hooks named in ``hooks=`` from ONE shared forward pass
                (a per-layer template such as ``blocks.{layer}.attn.hook_pattern`` arrives stacked
                over layers: ``[layer, batch, head, q_pos, k_pos]``);
* ``prompts`` — the ``PromptSet`` (tokens and extras such as ``corrupt_tokens``, ``answer``);
* ``model``   — ``ModelInfo`` (n_layers, n_heads, d_vocab ...), no weights;
* ``bridge``  — the live ``TransformerBridge`` with this checkpoint's weights (weight metrics
                and intervention metrics, which run their own hooked forward passes);
* a parameter named in ``inputs=`` — the ``xarray.DataArray`` of another metric, wired in the
  spec (``inputs: {series: induction}``); for a reduction it carries the whole ``step`` axis;
* every other keyword parameter is a spec ``arg``; its default and annotation are its schema.

The kind follows from that: ``reduces="step"`` → reduction; ``bridge`` + ``prompts`` →
intervention; ``bridge`` alone → weights; ``hooks`` → activation; only inputs → derived.

What a metric returns is told by ``dims=``: a tuple of dims, or a function of the metric's
args and its inputs' dims when they vary (``reduce`` drops the dims in ``over``), or None when
only the returned DataArray can tell. What it needs from an input is told by ``input_dims=``
(``icl_score`` needs ``pos``). Validation follows both along the metric DAG
(``mispec.metrics.dag``) and reports a spec that wires a metric to an input it cannot take
before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from mispec.code_identity import code_identity
from mispec.metrics.declaration import (
    annotation_text,
    check_bracket,
    check_dims_rule,
    check_indexes,
    check_input_dims,
    check_vocabulary,
    infer_kind,
    type_hints,
    units_text,
)
from mispec.metrics.record import (
    ArgCheck,
    ArgInfo,
    Bracket,
    DimsRule,
    ExtrasSpec,
    HookSpec,
    InputDims,
    MetricDef,
    UnitsRule,
)
from mispec.metrics.vocabulary import (
    ASSEMBLED_COORDS,
    CONTEXT_PARAMS,
    DIMS,
    INDEX_AXES,
    PSEUDO_HOOKS,
    RESERVED_NAMES,
    TL_HOOK_TEMPLATES,
    MetricKind,
)
from mispec.registry import Registry

# the public names of the metric API (``from mispec.metrics.core import ...``, docs/adding_a_metric.md)
__all__ = [
    "ASSEMBLED_COORDS",
    "DIMS",
    "INDEX_AXES",
    "METRICS",
    "PSEUDO_HOOKS",
    "RESERVED_NAMES",
    "TL_HOOK_TEMPLATES",
    "ArgInfo",
    "InputDims",
    "MetricDef",
    "MetricKind",
    "get_metric",
    "load_builtin_metrics",
    "metric",
]

METRICS: Registry[MetricDef] = Registry("metric function", entry_point_group="mispec.metrics")


def metric(
    *,
    dims: tuple[str, ...] | DimsRule | None,
    hooks: HookSpec = (),
    inputs: tuple[str, ...] = (),
    input_dims: Mapping[str, InputDims] | None = None,
    reduces: str | None = None,
    version: int | None = None,
    description: str | None = None,
    units: str | UnitsRule = "",
    name: str | None = None,
    register: bool = True,
    extras: ExtrasSpec = (),
    check_prompts: Callable[..., None] | None = None,
    other_side: tuple[str, ...] = (),
    comparable: tuple[str, ...] = (),
    indexes: Mapping[str, str | tuple[str, ...]] | None = None,
    check: ArgCheck | None = None,
    sized_by: Mapping[str, str] | None = None,
    bracket: Bracket | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a metric. The function stays a plain, directly callable function; its
    ``MetricDef`` is at ``fn.__mispec__`` and in the ``METRICS`` registry.

    ``dims`` is a tuple, None (the returned DataArray says), or a function whose parameters
    name args and inputs of the metric: it receives each arg's value and each input's dims
    (a tuple) and returns the result's dims (``reduce``: ``def drop_over(x, over): return
    tuple(d for d in x if d not in over)``). Like the metric, it must be a named function
    (the plan is pickled for distributed executors, which cannot pickle a lambda).
    ``input_dims`` maps an input to the ``InputDims`` it needs. Both are checked here, when
    the function is decorated.

    ``units`` is a string, or a named function of (some of) the metric's args returning one
    when they change what the numbers mean (``weight_distance``: ``relative`` divides by a
    norm); its docstring is the units' text in the catalogue.

    ``extras`` names the prompt-set extras the metric reads (``("answer", "wrong_answer")``),
    or is a named function of (some of) its args returning them (``mask`` names one);
    ``check_prompts(prompts, **args)`` checks a built prompt set further (raising
    ``PromptError``). ``validate`` runs both on the generated prompt sets the metric reads,
    so a missing extra is reported before any training.

    ``other_side`` names the inputs that read the second side of a comparison: a spec's
    ``pairs:`` (every seed pair, model A against model B, each step against the last) points
    them at the other (model, seed, step) and the result gains a dim for that side
    (``seed_b``, ``step_b``; see ``mispec.metrics.builtin.comparisons``); ``comparable``
    names the ``ModelInfo`` fields (``d_vocab``, ``n_heads`` ...) both sides must share.

    ``indexes`` maps an arg to what it indexes in the model, one of ``INDEX_AXES`` (``{"layer":
    "layer", "neurons": "neuron"}``), or a tuple of them for a list of ``[layer, head]``
    pairs (``{"receivers": ("layer", "head")}``); ``check(**args)`` (a named function of some
    of the args) returns ``{arg: message}`` for args that do not fit together (``early``
    after ``late``); ``sized_by`` maps a result dim to the arg that gives its length
    (``{"pc": "k"}``). ``validate`` runs all three, each problem at its arg in the spec.

    ``bracket`` makes a reduction of one series a transition that ``refine:`` can narrow
    down (``crossing_step``): a named function ``bracket(steps, values, **args)`` of the steps
    and the series' value at each (1-D arrays, in step order) and, by name, some of the
    metric's args, returning ``(before, at)`` (the transition happened after ``before`` and
    by ``at``) or None where there is none.
    ``version`` pins the metric's code: its cells' keys hold the number, so an edit keeps
    them until the number changes. Without it a plugin's keys hold its code fingerprint
    (``mispec.code_identity``: an edit recomputes its cells), a built-in's the version 1."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        metric_name = name or fn.__name__
        params = inspect.signature(fn).parameters
        for p in inputs:
            if p not in params:
                raise TypeError(f"metric {metric_name}: input '{p}' is not a parameter")
        context = frozenset(p for p in params if p in CONTEXT_PARAMS)
        hints = type_hints(fn)
        args = tuple(
            ArgInfo(p.name, p.default, annotation_text(p.annotation), hints.get(p.name))
            for p in params.values()
            if p.name not in CONTEXT_PARAMS
            and p.name not in inputs
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
        arg_names = {a.name for a in args}
        if callable(dims):
            check_dims_rule(metric_name, dims, arg_names | set(inputs))
        elif dims is not None:
            check_vocabulary(metric_name, "dims", dims)
        needs = dict(input_dims or {})
        for p, need in needs.items():
            check_input_dims(metric_name, p, need, inputs, arg_names)
        for p in other_side:
            if p not in inputs:
                raise TypeError(f"metric {metric_name}: other_side names '{p}', not an input")
        index_axes = check_indexes(metric_name, indexes or {}, arg_names)
        for dim, arg in (sized_by or {}).items():
            if arg not in arg_names:
                raise TypeError(f"metric {metric_name}: sized_by['{dim}'] names no arg '{arg}'")
        if check is not None:
            check_dims_rule(metric_name, check, arg_names, what="check")
        if callable(units):
            check_dims_rule(metric_name, units, arg_names, what="units")
        kind = infer_kind(metric_name, context, hooks, inputs, reduces)
        if other_side and kind == "reduction":
            raise TypeError(f"metric {metric_name}: a reduction cannot compare two sides")
        if bracket is not None:
            check_bracket(metric_name, bracket, kind, inputs, arg_names)
        doc = inspect.getdoc(fn) or ""
        definition = MetricDef(
            name=metric_name,
            fn=fn,
            kind=kind,
            dims=tuple(dims) if dims is not None and not callable(dims) else None,
            hooks=hooks if callable(hooks) else tuple(hooks),
            inputs=tuple(inputs),
            args=args,
            version=1 if version is None else version,
            description=description or doc.split("\n\n")[0].replace("\n", " "),
            units=units_text(units, args) if callable(units) else units,
            reduces=reduces,
            context=context,
            dims_rule=dims if callable(dims) else None,
            input_dims=needs,
            extras=extras if callable(extras) else tuple(extras),
            check_prompts=check_prompts,
            other_side=tuple(other_side),
            comparable=tuple(comparable),
            indexes=index_axes,
            check=check,
            sized_by=dict(sized_by or {}),
            units_rule=units if callable(units) else None,
            code=None if version is not None else code_identity(fn),
            bracket=bracket,
        )
        fn.__mispec__ = definition  # type: ignore[attr-defined]
        if register:
            METRICS.register(metric_name, definition)
        return fn

    return wrap


def get_metric(name: str) -> MetricDef:
    """The ``MetricDef`` for a registry name or a ``module:function`` reference."""
    load_builtin_metrics()
    return METRICS.get(name)


_BUILTINS_LOADED = False


def load_builtin_metrics() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import mispec.metrics.builtin  # noqa: F401  (registers on import)
