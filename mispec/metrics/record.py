"""The one frozen record of a metric (``MetricDef``), written by ``@metric``
(:mod:`mispec.metrics.core`): what the function reads, what it returns, its version, and the
rules that turn a spec's args into each of those (the args bound over the function's
defaults, the hooks, extras, dims and units they give).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mispec.metrics.vocabulary import MetricKind

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
# Where a transition happened, from a series' steps and values (1-D, in step order) and (some
# of) the metric's args by name: ``(before, at)``, the steps it happened between, or None.
Bracket = Callable[..., tuple[int, int] | None]


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
    # how to narrow down the transition this reduction locates (``Bracket``): what makes it a
    # ``refine:`` transition; ``refine`` adds checkpoints between the two steps it returns
    bracket: Bracket | None = None

    def bracket_for(
        self, steps: Any, values: Any, args: Mapping[str, Any]
    ) -> tuple[int, int] | None:
        """``(before, at)``: the steps between which the transition happened in a series of
        one number per checkpoint (``values`` at ``steps``, in step order), with these spec
        args; None where there is none. The metric must declare a ``bracket``."""
        if self.bracket is None:
            raise TypeError(f"metric {self.name} declares no bracket: it locates no transition")
        bound = self.bind_args(args)
        wanted = named_params(self.bracket, bound)
        return self.bracket(steps, values, **{p: bound[p] for p in wanted})

    def arg_problems(self, args: Mapping[str, Any]) -> dict[str, str]:
        """The ``check`` hook's verdict on these spec args: ``{arg: message}``."""
        if self.check is None:
            return {}
        bound = self.bind_args(args)
        wanted = named_params(self.check, bound)
        return dict(self.check(**{p: bound[p] for p in wanted}) or {})

    # units from the metric's args (``units=`` a function); ``units`` is then its text for
    # the catalogue (the function's docstring, else its value at the defaults)
    units_rule: UnitsRule | None = None

    def units_for(self, args: Mapping[str, Any]) -> str:
        """The units of this metric's result with these spec args."""
        if self.units_rule is None:
            return self.units
        bound = self.bind_args(args)
        wanted = named_params(self.units_rule, bound)
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
        wanted = named_params(self.extras, bound)
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
        wanted = named_params(self.dims_rule, available)
        if any(p in self.inputs and available[p] is None for p in wanted):
            return None
        return tuple(self.dims_rule(**{p: available[p] for p in wanted}))


def named_params(fn: Callable[..., Any], available: Mapping[str, Any]) -> list[str]:
    """The names in ``available`` that ``fn`` takes (all of them if it takes ``**kwargs``)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return list(available)
    return [p for p in params if p in available]
