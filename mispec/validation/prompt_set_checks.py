"""Checks of the prompt sets a spec's metrics read, before anything runs (from
:func:`mispec.validation.preflight.check_built`): generated sets are built (cheap, numpy
only) and fit the vocabulary and context of every model that reads them, a text set has a
model with a tokenizer to read it, and each metric finds the prompt extras it declares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import Problem, UserError
from mispec.spec.schema import Spec
from mispec.spec.yaml_source import KeyPath, SourceMap
from mispec.validation.prompt_files import text_extras_of

if TYPE_CHECKING:
    from mispec.sources import ModelSource


def build_prompt_sets(
    spec: Spec, source: SourceMap, base_dir: Path, problems: list[Problem]
) -> dict[str, Any]:
    """Generated prompt sets that metrics read, built as a run would build them."""
    from mispec.tasks.generators import PROMPT_GENERATORS

    used = {m.prompts for m in spec.metrics.values() if m.prompts is not None}
    built: dict[str, Any] = {}
    for name in sorted(used):
        prompt = spec.prompts[name]
        if prompt.generator is None:
            continue
        path: KeyPath = ("prompts", name, "args")
        try:
            generator = PROMPT_GENERATORS.get(prompt.generator, base_dir)
            prompts = generator(seed=prompt.seed, **prompt.args)
        except (UserError, ValueError, TypeError, MemoryError, OverflowError) as exc:
            problems.append(
                source.problem(
                    path if prompt.args else ("prompts", name, "generator"),
                    f"generator '{prompt.generator}' cannot build this prompt set: "
                    f"{type(exc).__name__}: {exc}"
                    if isinstance(exc, MemoryError | OverflowError)
                    else f"generator '{prompt.generator}' cannot build this prompt set: {exc}",
                )
            )
            continue
        if prompts.n == 0 or prompts.seq_len == 0:
            problems.append(source.problem(path, "this prompt set is empty"))
            continue
        built[name] = prompts
    return built


def check_prompt_fit(
    spec: Spec,
    source: SourceMap,
    sources: dict[str, ModelSource],
    built: dict[str, Any],
    problems: list[Problem],
) -> None:
    """Every model that reads a generated prompt set has its tokens in its vocabulary and
    its length in its context (where its source knows its info before the run)."""
    infos: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    for m in spec.metrics.values():
        if m.prompts not in built:
            continue
        prompts = built[m.prompts]
        for model_name in m.models or list(spec.models):
            if (m.prompts, model_name) in seen:
                continue
            seen.add((m.prompts, model_name))
            if model_name not in infos:
                infos[model_name] = sources[model_name].validation_info()
            info = infos[model_name]
            if info is None:
                continue
            path: KeyPath = ("prompts", m.prompts, "args")
            top = prompts.max_token()
            if top >= info.d_vocab:
                problems.append(
                    source.problem(
                        path,
                        f"token id {top} is outside the vocabulary of model '{model_name}' "
                        f"(d_vocab = {info.d_vocab}); lower the generator's vocab or use a "
                        "model with a bigger vocabulary",
                    )
                )
            if prompts.seq_len > info.n_ctx:
                problems.append(
                    source.problem(
                        path,
                        f"prompts are {prompts.seq_len} tokens long, longer than the context "
                        f"of model '{model_name}' (n_ctx = {info.n_ctx}); shorten them",
                    )
                )


def check_text_tokenizers(
    spec: Spec, source: SourceMap, sources: dict[str, ModelSource], problems: list[Problem]
) -> None:
    """A text prompt set (``file:``) read by a model that has no tokenizer (a trained toy
    model, a local folder without one, and no ``tokenizer:`` in the spec) cannot be run."""
    seen: set[tuple[str, str]] = set()
    for m in spec.metrics.values():
        if m.prompts is None or m.prompts not in spec.prompts:
            continue
        if spec.prompts[m.prompts].file is None:
            continue
        for model_name in m.models or list(spec.models):
            if (m.prompts, model_name) in seen or model_name not in sources:
                continue
            seen.add((m.prompts, model_name))
            if sources[model_name].has_tokenizer() is False:
                problems.append(
                    source.problem(
                        ("prompts", m.prompts, "file"),
                        f"prompt set '{m.prompts}' is text, and model '{model_name}' has no "
                        "tokenizer to read it: set `tokenizer:` on the model (a local "
                        "tokenizer folder), or use a generated prompt set",
                    )
                )


def check_prompt_extras(
    spec: Spec, source: SourceMap, built: dict[str, Any], base_dir: Path, problems: list[Problem]
) -> None:
    """Each metric reading a generated or text prompt set finds the extras it declares
    (``@metric(extras=...)``: ``answer``, ``wrong_answer``, a ``mask`` ...) and passes its
    ``check_prompts`` (``logit_diff``: answers at the last position unless told otherwise),
    reported at the metric before any training."""
    from mispec.metrics.core import METRICS, MetricDef

    for name, m in spec.metrics.items():
        is_text = m.prompts in spec.prompts and spec.prompts[m.prompts].file is not None
        if m.prompts not in built and not is_text:
            continue
        mdef = METRICS.get_or_none(m.fn)
        if not isinstance(mdef, MetricDef):
            continue
        prompts = built.get(m.prompts or "")
        have = (
            set(prompts.extras)
            if prompts is not None
            else text_extras_of(spec, m.prompts or "", base_dir)
        )
        try:
            missing = [e for e in mdef.extras_for(m.args) if e not in have]
        except (TypeError, ValueError) as exc:  # an extras function refusing the args
            problems.append(source.problem(("metrics", name, "args"), str(exc)))
            continue
        if missing:
            problems.append(
                source.problem(
                    ("metrics", name, "prompts"),
                    f"metric '{m.fn}' reads the prompt extra{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(repr(e) for e in missing)}, which prompt set '{m.prompts}' "
                    f"does not have (it has: {', '.join(sorted(have)) or 'none'}); "
                    + (
                        "add the field to every line of its .jsonl file"
                        if is_text
                        else "use a generator that provides them"
                    ),
                )
            )
            continue
        if mdef.check_prompts is not None and prompts is not None:
            try:
                mdef.check_prompts(prompts, **mdef.bind_args(m.args))
            except UserError as exc:
                problems.append(source.problem(("metrics", name), str(exc), at_key=True))
