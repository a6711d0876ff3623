"""Resolution: the facts the pure planner needs from outside the spec — which steps each
(model, seed) has, the content identity of each checkpoint and prompt set — asked of each
model's source (``mispec.sources``). Reads folder listings and file fingerprints, never
weights."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.code_identity import code_identity
from mispec.errors import CheckpointError, MispecError, PromptError, SpecError
from mispec.hashing import content_key
from mispec.spec.load import LoadedSpec
from mispec.spec.metrics import PromptSpec

if TYPE_CHECKING:
    from mispec.sources import ModelSource


@dataclass(frozen=True)
class Series:
    model: str
    seed: int
    steps: tuple[int, ...]
    checkpoint_ids: tuple[str, ...]  # aligned with steps
    training_identity: str | None  # the run to train first (train: models only)
    tokens_per_step: int | None  # tokens seen per training step, where known


@dataclass(frozen=True)
class Resolution:
    series: dict[tuple[str, int], Series]
    prompt_ids: dict[str, str]
    source_ids: dict[str, str]  # model name -> tokenizer/source identity
    # model name -> its source: what executors ask to train, open and describe a model
    sources: dict[str, ModelSource] = field(default_factory=dict)


def resolve(
    loaded: LoadedSpec, extra_steps: Mapping[tuple[str, int], Iterable[int]] | None = None
) -> Resolution:
    """Ask each model's source for its steps, checkpoint identities and training facts;
    fingerprint the prompt sets. Every unavailable checkpoint is one located problem.

    ``extra_steps`` adds steps to a (model, seed)'s selection (``refine:``'s added
    checkpoints, ``mispec.execute.refine``); they must be available steps."""
    from mispec.sources import sources_for
    from mispec.spec.selectors import resolve_selector

    spec, base = loaded.spec, loaded.base_dir
    series: dict[tuple[str, int], Series] = {}
    sources = sources_for(dict(spec.models), base)
    problems = []
    for name, source in sources.items():
        code = code_identity(type(source))  # a plugin source's code: in its checkpoints' keys
        for seed in source.entry.seeds:
            try:
                available = source.available_steps(seed)
                where = f"models.{name}.checkpoints"
                steps = resolve_selector(source.selector(), available, where=where)
                extra = set((extra_steps or {}).get((name, seed), ())) - set(steps)
                if extra:
                    known = set(available)
                    bad = sorted(s for s in extra if s not in known)
                    if bad:
                        raise CheckpointError(f"{where}: added step {bad[0]} is not available")
                    steps = sorted(set(steps) | extra)
                ids = tuple(_with_code(source.checkpoint_identity(seed, s), code) for s in steps)
            except CheckpointError as exc:
                problems.append(
                    loaded.source.problem(
                        ("models", name, "checkpoints"), str(exc).split(": ", 1)[-1]
                    )
                )
                continue
            series[(name, seed)] = Series(
                name,
                seed,
                tuple(steps),
                ids,
                source.training_identity(seed),
                source.tokens_per_step(),
            )
    if not problems:
        from mispec.validation.preflight import input_step_problems

        selected = {ms: list(ser.steps) for ms, ser in series.items()}
        problems.extend(input_step_problems(spec, loaded.source, selected))
    if problems:
        raise SpecError(problems)
    prompt_ids = {name: prompt_identity(p, base) for name, p in spec.prompts.items()}
    source_ids = {name: source.source_identity() for name, source in sources.items()}
    return Resolution(series, prompt_ids, source_ids, sources)


def _with_code(identity: str, code: Any) -> str:
    """A checkpoint's identity, with its plugin source's code where there is one (a built-in
    source's identities are kept as they are)."""
    return identity if code is None else content_key(identity, code)


def _generator_data_version(name: str, base_dir: Path) -> int:
    """The data version of the task behind a generator (1 for a pure generator or an unknown
    name, which validation reports): a fixed task generator draws new prompts, a new set."""
    from mispec.tasks.generators import PROMPT_GENERATORS

    try:
        generator = PROMPT_GENERATORS.get_or_none(name, base_dir)
    except MispecError:  # an unimportable reference: validation reports it, not identity
        return 1
    return 1 if generator is None else generator.data_version


def prompt_identity(prompt: PromptSpec, base_dir: Path) -> str:
    if prompt.generator is not None:
        from mispec.tasks.generators import generator_code

        # a plugin generator's code (an edit rebuilds the prompts); a built-in task's data
        # version where it is not 1 (a fixed task draws new prompts); nothing else
        code = generator_code(prompt.generator, base_dir)
        version = _generator_data_version(prompt.generator, base_dir)
        parts = ("generator", prompt.generator, prompt.args, prompt.seed, prompt.prepend_bos)
        return content_key(
            *parts,
            *(() if code is None else (code,)),
            *(() if version == 1 else (version,)),
        )
    path = (base_dir / prompt.file).resolve()  # type: ignore[operator]
    if not path.is_file():
        raise PromptError(f"prompt file not found: {path}")
    from mispec.hashing import bytes_digest

    return content_key(
        "file", bytes_digest(path.read_bytes()), prompt.prepend_bos, prompt.max_tokens, prompt.limit
    )
