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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
)
CONTEXT_PARAMS = frozenset({"acts", "prompts", "model", "bridge"})

# Hooks computed from the logits by the executor (cheap to store, unlike full logits):
PSEUDO_HOOKS = {
    "logits": "[batch, pos, vocab] output logits",
    "final_logits": "[batch, vocab] logits at the last position",
    "next_logprob": "[batch, pos-1] log-probability of the actual next token",
    "next_correct": "[batch, pos-1] 1.0 where the argmax prediction is the next token",
}

HookSpec = tuple[str, ...] | Callable[..., tuple[str, ...]]


@dataclass(frozen=True)
class ArgInfo:
    name: str
    default: Any  # inspect.Parameter.empty when required
    annotation: str

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


@dataclass(frozen=True)
class MetricDef:
    name: str
    fn: Callable[..., Any]
    kind: MetricKind
    dims: tuple[str, ...] | None  # None: the returned DataArray says (reductions, derived)
    hooks: HookSpec
    inputs: tuple[str, ...]
    args: tuple[ArgInfo, ...]
    version: int
    description: str
    units: str
    reduces: str | None
    context: frozenset[str] = field(default_factory=frozenset)

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


METRICS: Registry[MetricDef] = Registry("metric function", entry_point_group="mispec.metrics")


def metric(
    *,
    dims: tuple[str, ...] | None,
    hooks: HookSpec = (),
    inputs: tuple[str, ...] = (),
    reduces: str | None = None,
    version: int = 1,
    description: str | None = None,
    units: str = "",
    name: str | None = None,
    register: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a metric. The function stays a plain, directly callable function; its
    ``MetricDef`` is at ``fn.__mispec__`` and in the ``METRICS`` registry."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        metric_name = name or fn.__name__
        params = inspect.signature(fn).parameters
        for p in inputs:
            if p not in params:
                raise TypeError(f"metric {metric_name}: input '{p}' is not a parameter")
        if dims is not None:
            bad = [d for d in dims if d not in DIMS]
            if bad:
                raise TypeError(f"metric {metric_name}: dims {bad} not in the vocabulary {DIMS}")
        context = frozenset(p for p in params if p in CONTEXT_PARAMS)
        args = tuple(
            ArgInfo(p.name, p.default, str(p.annotation))
            for p in params.values()
            if p.name not in CONTEXT_PARAMS
            and p.name not in inputs
            and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
        kind = _infer_kind(metric_name, context, hooks, inputs, reduces)
        doc = inspect.getdoc(fn) or ""
        definition = MetricDef(
            name=metric_name,
            fn=fn,
            kind=kind,
            dims=tuple(dims) if dims is not None else None,
            hooks=hooks if callable(hooks) else tuple(hooks),
            inputs=tuple(inputs),
            args=args,
            version=version,
            description=description or doc.split("\n\n")[0].replace("\n", " "),
            units=units,
            reduces=reduces,
            context=context,
        )
        fn.__mispec__ = definition  # type: ignore[attr-defined]
        if register:
            METRICS.register(metric_name, definition)
        return fn

    return wrap


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
