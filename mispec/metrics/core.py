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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mispec.code_identity import code_identity
from mispec.registry import Registry

MetricKind = Literal["activation", "intervention", "weights", "derived", "reduction"]

# The closed vocabulary of result dimensions.
DIMS: tuple[str, ...] = (
    "model",
    "seed",
    "step",
    "layer",
    "head",
    "pos",
    "batch",
    "neuron",
    "component",
    "freq",
    "src_layer",
    "src_head",
    "dst_layer",
    "dst_head",
    "pc",
    "mode",
    "split",
    "digit",
    # per-checkpoint values that comparisons read, and the second side of a comparison
    "vocab",
    "d_model",
    "d_head",
    "k_pos",
    "seed_b",
    "step_b",
    "head_b",
    "element",
    # grokking and the algorithmic-task library: flat parameters, phases of a run
    "param",
    "phase",
)
# Coordinates the assembly adds beside the dims (``mispec.results.assemble``): ``tokens_seen``
# along ``step``.
ASSEMBLED_COORDS: tuple[str, ...] = ("tokens_seen",)
# Names a metric cannot take: each metric is a variable of its model's result dataset, beside
# the dims and coordinates above (a variable named ``layer`` would overwrite that coordinate).
RESERVED_NAMES: frozenset[str] = frozenset(DIMS) | frozenset(ASSEMBLED_COORDS)
CONTEXT_PARAMS = frozenset({"acts", "prompts", "model", "bridge"})

# Hooks computed from the logits by the executor (cheap to store, unlike full logits):
PSEUDO_HOOKS = {
    "logits": "[batch, pos, vocab] output logits",
    "final_logits": "[batch, vocab] logits at the last position",
    "next_logprob": "[batch, pos-1] log-probability of the actual next token",
    "next_correct": "[batch, pos-1] 1.0 where the argmax prediction is the next token",
}

# The hook templates of a TransformerLens model (``HookedTransformer`` and the names
# ``TransformerBridge`` keeps compatible), ``{layer}`` standing for a block's index: what a
# spec's top-level ``cache:`` may name beside the hooks its metrics read.
_BLOCK_HOOKS = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_in",
    "hook_q_input",
    "hook_k_input",
    "hook_v_input",
    "hook_mlp_in",
    "hook_attn_out",
    "hook_mlp_out",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_z",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.hook_result",
    "attn.hook_rot_q",
    "attn.hook_rot_k",
    "ln1.hook_scale",
    "ln1.hook_normalized",
    "ln2.hook_scale",
    "ln2.hook_normalized",
    "mlp.hook_pre",
    "mlp.hook_pre_linear",
    "mlp.hook_post",
)
TL_HOOK_TEMPLATES: tuple[str, ...] = (
    "hook_embed",
    "hook_pos_embed",
    "ln_final.hook_scale",
    "ln_final.hook_normalized",
    *(f"blocks.{{layer}}.{h}" for h in _BLOCK_HOOKS),
)

# What an arg may index (``@metric(indexes=...)``), and the ``ModelInfo`` field that bounds it:
# validation checks each such arg against every model the metric runs on whose shape is known
# before running.
INDEX_AXES: dict[str, str] = {
    "layer": "n_layers",
    "head": "n_heads",
    "neuron": "d_mlp",
    "pos": "n_ctx",
    "vocab": "d_vocab",
}

# Prompt extras a metric reads: fixed names, or a function of (some of) its args by name.
ExtrasSpec = tuple[str, ...] | Callable[..., Sequence[str]]
HookSpec = tuple[str, ...] | Callable[..., tuple[str, ...]]
# Output dims from args and input dims, each passed by its parameter name (see ``metric``).
DimsRule = Callable[..., Sequence[str]]
# A check of a metric's args together: takes (some of) them by name, returns the problems as
# ``{arg: what is wrong and what to do}`` (empty or None when they are fine).
ArgCheck = Callable[..., Mapping[str, str] | None]
# Units from args, each passed by its parameter name (``relative`` → "relative L2 distance").
UnitsRule = Callable[..., str]


@dataclass(frozen=True)
class ArgInfo:
    name: str
    default: Any  # inspect.Parameter.empty when required
    annotation: str
    # the annotation resolved to a type (``typing.get_type_hints``, with or without ``from
    # __future__ import annotations``); None when it cannot be resolved
    type: Any = field(default=None, compare=False, hash=False)

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True)
class InputDims:
    """Dims a metric needs in one of its inputs: fixed ones (``dims``), or the ones that a
    list arg names (``arg``: ``reduce`` needs the dims in ``over``), never both.

    Validation checks them where the input's dims are known before running, and ``why``
    words the error. With ``dims`` it says what they are, as in "``<fn> needs <why>, but
    '<input>' (<its fn>) has dims (layer, head)``" (default: "the dims (pos) in its input
    'x'"), located at the spec's ``inputs`` entry; with ``arg`` it says what the metric does
    with them, as in "``'<input>' has no dims ['neuron'] <why> (its dims: (layer, head))``"
    (default: "named in 'over'"), located at that arg.
    """

    dims: tuple[str, ...] = ()
    arg: str | None = None
    why: str = ""


@dataclass(frozen=True)
class MetricDef:
    name: str
    fn: Callable[..., Any]
    kind: MetricKind
    dims: tuple[str, ...] | None  # None: ``dims_rule`` or the returned DataArray says
    hooks: HookSpec
    inputs: tuple[str, ...]
    args: tuple[ArgInfo, ...]
    version: int
    description: str
    units: str
    reduces: str | None
    context: frozenset[str] = field(default_factory=frozenset)
    dims_rule: DimsRule | None = None  # dims from args and input dims (``dims=`` a callable)
    input_dims: dict[str, InputDims] = field(default_factory=dict, hash=False)  # by input
    # prompt extras the metric reads (a tuple, or a function of its args): checked at validate
    extras: ExtrasSpec = ()
    # a check of a built prompt set with the metric's args (raises PromptError), at validate
    check_prompts: Callable[..., None] | None = None
    # the inputs that read the OTHER side of a comparison (a spec's ``pairs:`` points them at
    # the second seed, model or step); the rest read this cell's own checkpoint
    other_side: tuple[str, ...] = ()
    # ``ModelInfo`` fields the two sides must share (``d_vocab`` for distributions): checked
    # at validate for a pair of models whose shapes are known before running
    comparable: tuple[str, ...] = ()
    # args that index the model (``INDEX_AXES``): arg -> the axes of each of its entries (one
    # axis: an int or a list of ints; several: a list of ``[i, j]``), checked at validate
    indexes: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    # a check of the args together (``ArgCheck``), run at validate, each problem at its arg
    check: ArgCheck | None = None
    # result dims whose length an arg gives (``{"pc": "k"}``): the results of one model share
    # each dim, so validate refuses two metrics of a model that size it differently
    sized_by: dict[str, str] = field(default_factory=dict, hash=False)

    def arg_problems(self, args: Mapping[str, Any]) -> dict[str, str]:
        """The ``check`` hook's verdict on these spec args: ``{arg: message}``."""
        if self.check is None:
            return {}
        bound = self.bind_args(args)
        wanted = _named_params(self.check, bound)
        return dict(self.check(**{p: bound[p] for p in wanted}) or {})

    # units from the metric's args (``units=`` a function); ``units`` is then its text for
    # the catalogue (the function's docstring, else its value at the defaults)
    units_rule: UnitsRule | None = None

    def units_for(self, args: Mapping[str, Any]) -> str:
        """The units of this metric's result with these spec args."""
        if self.units_rule is None:
            return self.units
        bound = self.bind_args(args)
        wanted = _named_params(self.units_rule, bound)
        return str(self.units_rule(**{p: bound[p] for p in wanted}))

    # a plugin's code identity (``mispec.code_identity``): ``{"code": <fingerprint>}`` when
    # no ``version=`` pins it; None for built-ins and pinned plugins (the version says)
    code: Any = field(default=None, compare=False)

    @property
    def key_version(self) -> Any:
        """What a cell's key holds for the metric's code: its version, or the fingerprint
        of an unpinned plugin's code (an edit recomputes its cells)."""
        return self.version if self.code is None else self.code

    def extras_for(self, args: Mapping[str, Any]) -> tuple[str, ...]:
        """Prompt extras this metric reads with these spec args (sorted, unique)."""
        if not callable(self.extras):
            return tuple(sorted(set(self.extras)))
        bound = self.bind_args(args)
        wanted = _named_params(self.extras, bound)
        return tuple(sorted(set(self.extras(**{p: bound[p] for p in wanted}))))

    @property
    def needs_prompts(self) -> bool:
        return "prompts" in self.context or "acts" in self.context

    @property
    def needs_bridge(self) -> bool:
        return "bridge" in self.context

    def hooks_for(self, args: Mapping[str, Any]) -> tuple[str, ...]:
        """Hook templates this metric reads with these spec args (sorted, unique)."""
        hooks = self.hooks(**self.bind_args(args)) if callable(self.hooks) else self.hooks
        return tuple(sorted(set(hooks)))

    def bind_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Spec args merged over the function's defaults (all args, so keys are explicit)."""
        out = {a.name: a.default for a in self.args if not a.required}
        out.update(args)
        return out

    def dims_for(
        self, args: Mapping[str, Any], inputs: Mapping[str, tuple[str, ...] | None]
    ) -> tuple[str, ...] | None:
        """The dims of this metric's result (without the ``seed`` and ``step`` the executor
        adds) with these spec args, given its inputs' dims by parameter name: the declared
        ones, else what ``dims_rule`` makes of them; None when they are unknown before running
        (no rule, or an input the rule reads has unknown dims)."""
        if self.dims is not None or self.dims_rule is None:
            return self.dims
        available: dict[str, Any] = self.bind_args(args)
        for param in self.inputs:
            available[param] = inputs.get(param)
        wanted = _named_params(self.dims_rule, available)
        if any(p in self.inputs and available[p] is None for p in wanted):
            return None
        return tuple(self.dims_rule(**{p: available[p] for p in wanted}))


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
        hints = _type_hints(fn)
        args = tuple(
            ArgInfo(p.name, p.default, _annotation_text(p.annotation), hints.get(p.name))
            for p in params.values()
            if p.name not in CONTEXT_PARAMS
            and p.name not in inputs
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
        arg_names = {a.name for a in args}
        if callable(dims):
            _check_dims_rule(metric_name, dims, arg_names | set(inputs))
        elif dims is not None:
            _check_vocabulary(metric_name, "dims", dims)
        needs = dict(input_dims or {})
        for p, need in needs.items():
            _check_input_dims(metric_name, p, need, inputs, arg_names)
        for p in other_side:
            if p not in inputs:
                raise TypeError(f"metric {metric_name}: other_side names '{p}', not an input")
        index_axes = _check_indexes(metric_name, indexes or {}, arg_names)
        for dim, arg in (sized_by or {}).items():
            if arg not in arg_names:
                raise TypeError(f"metric {metric_name}: sized_by['{dim}'] names no arg '{arg}'")
        if check is not None:
            _check_dims_rule(metric_name, check, arg_names, what="check")
        if callable(units):
            _check_dims_rule(metric_name, units, arg_names, what="units")
        kind = _infer_kind(metric_name, context, hooks, inputs, reduces)
        if other_side and kind == "reduction":
            raise TypeError(f"metric {metric_name}: a reduction cannot compare two sides")
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
            units=_units_text(units, args) if callable(units) else units,
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
        )
        fn.__mispec__ = definition  # type: ignore[attr-defined]
        if register:
            METRICS.register(metric_name, definition)
        return fn

    return wrap


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' annotations as types, whether or not the module has ``from __future__
    import annotations`` (an annotation that names what is not importable at run time, e.g.
    under ``TYPE_CHECKING``, leaves the whole function unresolved: {})."""
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def _annotation_text(annotation: Any) -> str:
    """An annotation as the text a user reads (``int``, ``list[int] | None``)."""
    if isinstance(annotation, str):
        return annotation
    if annotation is inspect.Parameter.empty:
        return str(annotation)
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _check_indexes(
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


def _units_text(rule: UnitsRule, args: tuple[ArgInfo, ...]) -> str:
    """A units rule's text for the catalogue: its docstring, else its value at the defaults."""
    doc = inspect.getdoc(rule)
    if doc:
        return " ".join(doc.split())
    defaults = {a.name: a.default for a in args if not a.required}
    return str(rule(**{p: defaults[p] for p in _named_params(rule, defaults)}))


def _check_vocabulary(name: str, what: str, dims: Sequence[str]) -> None:
    bad = [d for d in dims if d not in DIMS]
    if bad:
        raise TypeError(f"metric {name}: {what} {bad} not in the vocabulary {DIMS}")


def _check_dims_rule(
    name: str, rule: Callable[..., Any], allowed: set[str], what: str = "dims"
) -> None:
    """A dims (or check, or units) function is a named function taking, by keyword, only args
    and inputs (check and units: only args)."""
    if getattr(rule, "__name__", "") == "<lambda>":
        raise TypeError(
            f"metric {name}: {what} must be a named function, not a lambda (the plan is pickled "
            "for distributed executors, and a lambda cannot be)"
        )
    for p in inspect.signature(rule).parameters.values():
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.kind is p.POSITIONAL_ONLY or p.name not in allowed:
            raise TypeError(
                f"metric {name}: the {what} function's parameter '{p.name}' is not an arg"
                + (" or input" if what == "dims" else "")
                + f" of the metric (those are: {sorted(allowed)})"
            )


def _check_input_dims(
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
    _check_vocabulary(name, f"input_dims['{param}']", need.dims)


def _named_params(fn: Callable[..., Any], available: Mapping[str, Any]) -> list[str]:
    """The names in ``available`` that ``fn`` takes (all of them if it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return list(available)
    return [p for p in params if p in available]


def _infer_kind(
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
