"""Where a model's checkpoints come from, answered cheaply (no weights, no torch).

A spec model has one of three sources: ``train`` (mispec trains it; every step exists),
``pretrained`` (a hub family; its published schedule) or ``path`` (a local folder).
``{seed}`` in ``path`` / ``pretrained`` is formatted with the seed. These functions serve
the planner: which steps exist, what identifies a checkpoint in cache keys, and the
architecture facts metrics may need before any weights are loaded.
"""

from __future__ import annotations

from pathlib import Path

from mispec.errors import CheckpointError
from mispec.hashing import content_key
from mispec.models import hub, schedules
from mispec.models.configs import (
    info_from_config,
    info_from_hf_config,
    info_from_tl_config,
    read_json,
)
from mispec.models.info import ModelInfo
from mispec.models.local import LocalLayout, discover, step_identity
from mispec.models.runs import train_info, training_identity
from mispec.spec.schema import ModelSpec, Selector
from mispec.spec.selectors import DEFAULT_TRAIN_SELECTOR, nearest


def default_selector(model: ModelSpec) -> Selector:
    """``{schedule: log, count: 32}`` for trained models, ``all`` otherwise."""
    return DEFAULT_TRAIN_SELECTOR if model.source_kind == "train" else "all"


def pretrained_name(model: ModelSpec, seed: int) -> str:
    assert model.pretrained is not None
    return model.pretrained.format(seed=seed)


def local_root(model: ModelSpec, seed: int, base_dir: Path) -> Path:
    assert model.path is not None
    p = Path(model.path.format(seed=seed)).expanduser()
    return (p if p.is_absolute() else Path(base_dir) / p).resolve()


def local_layout(model: ModelSpec, seed: int, base_dir: Path) -> LocalLayout:
    return discover(local_root(model, seed, base_dir))


def available_steps(model: ModelSpec, seed: int, base_dir: Path) -> list[int]:
    """Every step that exists for this (model, seed), sorted."""
    kind = model.source_kind
    if kind == "train":
        assert model.train is not None
        return list(range(model.train.steps + 1))
    if kind == "pretrained":
        name = pretrained_name(model, seed)
        steps = schedules.embedded_steps(name)
        return steps if steps is not None else hub.tl_legacy_labels(name)
    return local_layout(model, seed, base_dir).sorted_steps


def check_step(step: int, available: list[int], what: str) -> None:
    if step not in set(available):
        raise CheckpointError(
            f"{what}: step {step} is not available; nearest: {nearest(step, available)}"
        )


def checkpoint_identity(model: ModelSpec, seed: int, step: int, base_dir: Path) -> str:
    """A cheap content identity of one checkpoint, for cache keys."""
    kind = model.source_kind
    if kind == "train":
        assert model.train is not None
        return content_key(training_identity(model.train, seed), step)
    if kind == "pretrained":
        name = pretrained_name(model, seed)
        fam = schedules.family(name)
        if fam == "tl_legacy":
            return content_key(name, f"checkpoints/{step}")
        steps = schedules.embedded_steps(name) or []
        check_step(step, steps, name)
        return content_key(name, schedules.revision_for(name, step) or "main")
    layout = local_layout(model, seed, base_dir)
    check_step(step, layout.sorted_steps, str(layout.root))
    return step_identity(layout, step)


def model_info(name: str, model: ModelSpec, base_dir: Path) -> ModelInfo:
    """Architecture facts without loading weights (first seed's source for ``{seed}``)."""
    seed = model.seeds[0]
    kind = model.source_kind
    if kind == "train":
        assert model.train is not None
        return train_info(name, model.train)
    if kind == "path":
        layout = local_layout(model, seed, base_dir)
        if layout.kind == "hf":
            first = layout.steps[layout.sorted_steps[0]]
            return info_from_hf_config(name, read_json(first / "config.json"))
        assert layout.config is not None
        return info_from_tl_config(name, read_json(layout.config))
    repo = pretrained_name(model, seed)
    cfg = hub.cached_config(repo)
    if cfg is not None:
        return info_from_config(name, cfg)
    known = schedules.embedded_info(repo)
    if known is not None:
        return ModelInfo(name=name, **known)
    if schedules.family(repo) == "tl_legacy" or not hub.is_offline():
        try:
            return info_from_config(name, hub.hub_json(repo, "config.json"))
        except CheckpointError:
            pass
    raise CheckpointError(f"model '{name}': no config for {repo}. " + hub.fetch_hint(repo, None))
