"""Resolution: the facts the pure planner needs from outside the spec — which steps each
(model, seed) has, the content identity of each checkpoint and prompt set. Reads folder
listings and file fingerprints, never weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mispec.errors import CheckpointError, PromptError, SpecError
from mispec.hashing import content_key
from mispec.spec.load import LoadedSpec
from mispec.spec.schema import PromptSpec


@dataclass(frozen=True)
class Series:
    model: str
    seed: int
    steps: tuple[int, ...]
    checkpoint_ids: tuple[str, ...]  # aligned with steps
    training_identity: str | None  # train: models only
    tokens_per_step: int | None  # tokens seen per training step, where known


@dataclass(frozen=True)
class Resolution:
    series: dict[tuple[str, int], Series]
    prompt_ids: dict[str, str]
    source_ids: dict[str, str]  # model name -> tokenizer/source identity


def resolve(loaded: LoadedSpec) -> Resolution:
    from mispec import models as sources
    from mispec.spec.selectors import resolve_selector

    spec, base = loaded.spec, loaded.base_dir
    series: dict[tuple[str, int], Series] = {}
    source_ids: dict[str, str] = {}
    problems = []
    for name, model in spec.models.items():
        selector = (
            model.checkpoints if model.checkpoints is not None else sources.default_selector(model)
        )
        source_ids[name] = content_key(
            model.source_kind, model.pretrained or model.path or "train", model.tokenizer
        )
        for seed in model.seeds:
            try:
                available = sources.available_steps(model, seed, base)
                steps = resolve_selector(selector, available, where=f"models.{name}.checkpoints")
                ids = tuple(sources.checkpoint_identity(model, seed, s, base) for s in steps)
            except CheckpointError as exc:
                problems.append(
                    loaded.source.problem(
                        ("models", name, "checkpoints"), str(exc).split(": ", 1)[-1]
                    )
                )
                continue
            train = model.train
            tokens = None
            if train is not None and train.batch_size is not None:
                n_ctx = sources.model_info(name, model, base).n_ctx
                tokens = train.batch_size * n_ctx
            series[(name, seed)] = Series(
                name,
                seed,
                tuple(steps),
                ids,
                sources.training_identity(train, seed) if train is not None else None,
                tokens,
            )
    if problems:
        raise SpecError(problems)
    prompt_ids = {name: prompt_identity(p, base) for name, p in spec.prompts.items()}
    return Resolution(series, prompt_ids, source_ids)


def prompt_identity(prompt: PromptSpec, base_dir: Path) -> str:
    if prompt.generator is not None:
        return content_key(
            "generator", prompt.generator, prompt.args, prompt.seed, prompt.prepend_bos
        )
    path = (base_dir / prompt.file).resolve()  # type: ignore[operator]
    if not path.is_file():
        raise PromptError(f"prompt file not found: {path}")
    from mispec.hashing import bytes_digest

    return content_key(
        "file", bytes_digest(path.read_bytes()), prompt.prepend_bos, prompt.max_tokens, prompt.limit
    )
