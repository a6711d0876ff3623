"""Validation of a ``train:`` model's ``refine:`` and ``live:`` keys (located problems).

``refine.transition`` must name a metric that declares how to bracket a transition
(``crossing_step``, or a plugin's ``@metric(bracket=...)``), runs on this model and reads a
series with one number per checkpoint (e.g. ``induction_max``); ``live`` must name metrics
computed per checkpoint from that checkpoint alone (they run inside the training loop, where
no other checkpoint exists yet).
"""

from __future__ import annotations

from mispec.errors import Problem
from mispec.registry import did_you_mean
from mispec.sources.trained import TrainedModelSpec
from mispec.spec.metrics import InputRef
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import SourceMap


def zoom_problems(spec: Spec, source: SourceMap) -> list[Problem]:
    """Every problem of the ``refine:`` and ``live:`` keys of ``spec``'s trained models."""
    from mispec.metrics.core import MetricDef, get_metric
    from mispec.metrics.dag import build_metric_graph

    wanted = [
        (n, m)
        for n, m in spec.models.items()
        if isinstance(m, TrainedModelSpec) and (m.refine is not None or m.live)
    ]
    if not wanted:
        return []
    defs: dict[str, MetricDef] = {}
    for name, m in spec.metrics.items():
        try:
            defs[name] = get_metric(m.fn)
        except Exception:  # reported by the metric checks
            return []
    try:
        graph = build_metric_graph(spec.metrics, defs)
    except Exception:  # a cycle: reported elsewhere
        return []
    problems: list[Problem] = []
    for model, entry in wanted:
        where = ("models", model)

        def unknown(name: str, path: tuple[str | int, ...], model: str = model) -> bool:
            if name in spec.metrics:
                if spec.metrics[name].models in (None, []) or model in (
                    spec.metrics[name].models or []
                ):
                    return False
                problems.append(source.problem(path, f"metric '{name}' does not run on '{model}'"))
                return True
            problems.append(
                source.problem(
                    path, f"unknown metric '{name}'{did_you_mean(name, list(spec.metrics))}"
                )
            )
            return True

        if entry.refine is not None:
            path: tuple[str | int, ...] = (*where, "refine", "transition")
            target = entry.refine.transition
            if not unknown(target, path):
                tdef = defs[target]
                refs = spec.metrics[target].input_refs()  # a bracket's metric has one input
                series = refs.get(tdef.inputs[0]) if tdef.bracket is not None else None
                if tdef.bracket is None:
                    problems.append(
                        source.problem(
                            path,
                            f"'{target}' is a '{tdef.name}' metric; refine needs a crossing_step "
                            "metric (its series and level say what to locate), or another "
                            "that declares a bracket",
                        )
                    )
                elif series is None or not series.is_local:
                    problems.append(
                        source.problem(path, f"'{target}' must read its series by metric name")
                    )
                elif graph.granularity.get(series.metric) != "group" or graph.dims.get(
                    series.metric
                ) not in ((), None):
                    problems.append(
                        source.problem(
                            path,
                            f"'{target}' reads '{series.metric}', which is not one number per "
                            f"checkpoint (dims {graph.dims.get(series.metric)}); reduce it first "
                            "(e.g. {fn: reduce, args: {over: [layer, head], how: max}})",
                        )
                    )
        for i, name in enumerate(entry.live or []):
            path = (*where, "live", i)
            if unknown(name, path):
                continue
            if graph.granularity.get(name) != "group":
                problems.append(
                    source.problem(
                        path, f"'{name}' reads the whole step axis; a live metric is per checkpoint"
                    )
                )
            elif any(isinstance(r, InputRef) and not r.is_local for r in _upstream(spec, name)):
                problems.append(
                    source.problem(
                        path,
                        f"'{name}' reads another checkpoint, seed or model; a live metric can "
                        "only read the checkpoint being trained",
                    )
                )
    return problems


def _upstream(spec: Spec, name: str) -> list[InputRef]:
    """Every input reference of ``name`` and of the metrics it reads, transitively."""
    out: list[InputRef] = []
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in spec.metrics:
            continue
        seen.add(current)
        refs = list(spec.metrics[current].input_refs().values())
        out += refs
        todo += [r.metric for r in refs]
    return out
