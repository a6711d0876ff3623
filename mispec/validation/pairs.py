"""Checks of the ``pairs:`` a comparison metric declares, at validate (file:line:col, exit 2).

A comparison metric (``@metric(other_side=...)``: ``kl_divergence``, ``head_matching`` ...)
reads two sides; ``pairs:`` says which. Refused here, before anything trains:

* an other-side input that names a checkpoint itself (``pairs:`` chooses it), and a metric
  that reads a comparison metric (one result per pair: not an input yet);
* ``pairs:`` on a metric that compares nothing (no ``other_side`` inputs), and a comparison
  metric whose second side is its own checkpoint (no ``pairs:`` and no input reference
  such as ``q: {metric: logprobs, seed: 1}``: it would compare a checkpoint with itself);
* a pair naming a seed a model does not have, a model that does not exist (did you mean),
  a model against itself, two models that share no seed, and a step that is no checkpoint
  of a run whose steps are known before running (``train:`` models; other sources are
  checked when the plan resolves their steps);
* two models whose shapes the metric cannot compare (``@metric(comparable=...)``: e.g.
  ``kl_divergence`` needs the same vocabulary, ``head_matching`` the same layers and heads),
  where both models' shapes are known from local facts (``ModelSource.validation_info``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mispec.errors import Problem
from mispec.registry import did_you_mean
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import KeyPath, SourceMap


def check_pairs(spec: Spec, source: SourceMap, base_dir: Path) -> list[Problem]:
    from mispec.metrics.core import METRICS, MetricDef

    problems: list[Problem] = []
    for name, m in spec.metrics.items():
        try:
            mdef = METRICS.get_or_none(m.fn, base_dir)
        except Exception:  # reported by the registry checks
            continue
        if not isinstance(mdef, MetricDef):
            continue
        path: KeyPath = ("metrics", name)
        if m.pairs is None:
            refs = m.input_refs()
            if mdef.other_side and all(refs[p].is_local for p in mdef.other_side if p in refs):
                sides = ", ".join(mdef.other_side)
                problems.append(
                    source.problem(
                        path,
                        f"metric '{m.fn}' compares two sides (its input(s) {sides} read the "
                        "second one): add `pairs:` (seeds, {models: [A, B]} or {steps: last}), "
                        "or point them at one checkpoint ({metric: ..., seed: 1})",
                        at_key=True,
                    )
                )
            continue
        if not mdef.other_side:
            problems.append(
                source.problem(
                    (*path, "pairs"),
                    f"metric '{m.fn}' compares nothing: it has no input for a second side "
                    "(comparison metrics: kl_divergence, logprob_diff, top1_agreement, "
                    "representation_similarity, head_matching, weight_distance, "
                    "cross_model_patching)",
                    at_key=True,
                )
            )
            continue
        for param, ref in m.input_refs().items():
            if param in mdef.other_side and not ref.is_local:
                problems.append(
                    source.problem(
                        (*path, "inputs", param),
                        f"'{param}' reads the second side, which `pairs:` chooses: name the "
                        f"metric only (`{param}: {ref.metric}`)",
                    )
                )
        for reader, other in spec.metrics.items():
            for param, ref in other.input_refs().items():
                if ref.metric == name:
                    problems.append(
                        source.problem(
                            ("metrics", reader, "inputs", param),
                            f"'{name}' compares pairs (one result per pair of sides): no "
                            "metric can read it yet; read its result after the run "
                            "(dims seed/seed_b, step_b, or the A_vs_B node)",
                        )
                    )
        models = m.models or list(spec.models)
        pairs = m.pairs
        if pairs.seeds is not None:
            _check_seeds(spec, models, pairs.seeds, (*path, "pairs", "seeds"), source, problems)
        if pairs.models is not None:
            _check_models(
                spec, m, mdef, pairs.models, (*path, "pairs", "models"), source, problems, base_dir
            )
        if isinstance(pairs.steps, int):
            if pairs.models is not None:  # a step of model B
                models = [pairs.models[1]] if pairs.models[1] in spec.models else []
            _check_step(
                spec, models, pairs.steps, (*path, "pairs", "steps"), source, problems, base_dir
            )
    return problems


def _check_seeds(
    spec: Spec,
    models: list[str],
    seeds: Any,
    path: KeyPath,
    source: SourceMap,
    problems: list[Problem],
) -> None:
    for model in models:
        if model not in spec.models:
            continue
        have = list(spec.models[model].seeds)
        if seeds == "all":
            if len(have) < 2:
                problems.append(
                    source.problem(
                        path,
                        f"model '{model}' has one seed ({have[0]}): no seed pair to compare; "
                        "give it more `seeds:`",
                    )
                )
            continue
        for i, seed in enumerate(seeds):
            if seed not in have:
                problems.append(
                    source.problem(
                        (*path, i),
                        f"seed {seed} is not a seed of model '{model}' (its seeds: {have})",
                    )
                )
        if len(set(seeds)) < len(seeds):
            problems.append(source.problem(path, f"seeds {seeds} name a seed twice"))


def _check_models(
    spec: Spec,
    m: Any,
    mdef: Any,
    pair: tuple[str, str],
    path: KeyPath,
    source: SourceMap,
    problems: list[Problem],
    base_dir: Path,
) -> None:
    bad = False
    for i, model in enumerate(pair):
        if model not in spec.models:
            problems.append(
                source.problem(
                    (*path, i), f"unknown model '{model}'{did_you_mean(model, list(spec.models))}"
                )
            )
            bad = True
    if bad:
        return
    a, b = pair
    if a == b:
        problems.append(
            source.problem(path, f"a model against itself ('{a}'): for seeds use `pairs: seeds`")
        )
        return
    if m.models is not None and a not in m.models:
        problems.append(
            source.problem(path, f"model '{a}' is not among the metric's `models:` {m.models}")
        )
    for param, ref in m.input_refs().items():
        if param not in mdef.other_side or ref.metric not in spec.metrics:
            continue
        runs_on = spec.metrics[ref.metric].models
        if runs_on is not None and b not in runs_on:
            problems.append(
                source.problem(
                    path,
                    f"'{param}' reads '{ref.metric}' of model '{b}', but '{ref.metric}' does not "
                    f"run on '{b}' (its `models:` {runs_on})",
                )
            )
    if f"{a}_vs_{b}" in spec.models:  # the results node of the comparison (assemble_pairs)
        problems.append(
            source.problem(
                path,
                f"the comparison's results node '{a}_vs_{b}' is also a model's name; rename "
                "that model",
            )
        )
    shared = sorted(set(spec.models[a].seeds) & set(spec.models[b].seeds))
    if not shared:
        problems.append(
            source.problem(
                path,
                f"models '{a}' and '{b}' share no seed (seeds {list(spec.models[a].seeds)} and "
                f"{list(spec.models[b].seeds)}): sides are compared seed by seed",
            )
        )
    if not mdef.comparable:
        return
    info = {side: _info(side, spec, base_dir) for side in pair}
    if info[a] is None or info[b] is None:
        return
    differ = [
        f"{f} {getattr(info[a], f)} vs {getattr(info[b], f)}"
        for f in mdef.comparable
        if getattr(info[a], f) != getattr(info[b], f)
    ]
    if differ:
        problems.append(
            source.problem(
                path,
                f"models '{a}' and '{b}' cannot be compared by '{m.fn}': {', '.join(differ)} "
                f"(it needs the same {', '.join(mdef.comparable)})",
            )
        )


def _info(model: str, spec: Spec, base_dir: Path) -> Any:
    from mispec.sources import source_for

    try:
        return source_for(model, spec.models[model], base_dir).validation_info()
    except Exception:  # the source reports its own problems
        return None


def _check_step(
    spec: Spec,
    models: list[str],
    step: int,
    path: KeyPath,
    source: SourceMap,
    problems: list[Problem],
    base_dir: Path,
) -> None:
    """A fixed step must be a checkpoint of every series, where its steps are known now."""
    from mispec.sources import source_for
    from mispec.spec.selectors import resolve_selector

    for model in models:
        entry = spec.models.get(model)
        if entry is None or entry.source_name() != "train":
            continue
        try:
            src = source_for(model, entry, base_dir)
            seed = entry.seeds[0]
            steps = resolve_selector(src.selector(), src.available_steps(seed), where="")
        except Exception:  # the source reports its own problems
            continue
        if step not in steps:
            near = sorted(steps, key=lambda s: abs(s - step))[:2]
            problems.append(
                source.problem(
                    path,
                    f"step {step} is not a checkpoint of model '{model}' (nearest: "
                    f"{sorted(near)}; its checkpoints: {len(steps)} steps from {steps[0]} to "
                    f"{steps[-1]})",
                )
            )
