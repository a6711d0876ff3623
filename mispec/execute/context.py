"""Everything one process needs to run plan nodes: the spec, the plan, the store, the
profile, and a pool holding ONE model bridge at a time (weights swapped per checkpoint)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mispec.planning.graph import Plan
from mispec.prompts.core import PromptSet
from mispec.store.store import Store


@dataclass
class Counters:
    forward_passes: int = 0
    cells_computed: int = 0
    cells_cached: int = 0
    reductions_computed: int = 0
    activations_read: int = 0
    activations_written: int = 0
    checkpoints_loaded: int = 0
    training_steps: int = 0

    def add(self, other: Counters) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RunContext:
    plan: Plan
    base_dir: Path
    store: Store
    device: str = "cpu"
    batch_size: int | None = None
    counters: Counters = field(default_factory=Counters)
    _handle: Any = None
    _handle_id: tuple[str, int] | None = None
    _prompts: dict[tuple[str, str], PromptSet] = field(default_factory=dict)
    _infos: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> Any:
        return self.plan.spec

    def handle(self, model: str, seed: int) -> Any:
        """The ``ModelHandle`` of (model, seed); the previous one is closed (bounded memory)."""
        if self._handle_id != (model, seed):
            self.close()
            from mispec.models import ModelHandle

            mspec = self.spec.models[model]
            self._handle = ModelHandle.open(
                model,
                mspec,
                seed,
                self.base_dir,
                self.store.root,
                device=self.model_device(model),
                dtype=mspec.dtype,
            )
            self._handle_id = (model, seed)
        return self._handle

    def info(self, model: str) -> Any:
        """The model's ``ModelInfo``, read once per run (a ``path:`` model reads its config)."""
        if model not in self._infos:
            from mispec import models as sources

            self._infos[model] = sources.model_info(model, self.spec.models[model], self.base_dir)
        return self._infos[model]

    def model_device(self, model: str) -> str:
        wanted = self.spec.models[model].device
        if wanted == "auto":
            wanted = self.device
        if wanted == "auto":
            import torch

            return "cuda" if torch.cuda.is_available() else "cpu"
        return wanted

    def prompts(self, name: str, model: str) -> PromptSet:
        from mispec.execute.prompts import build_prompts

        pspec = self.spec.prompts[name]
        cache_key = (name, model if pspec.file is not None else "")
        if cache_key not in self._prompts:
            info = self.info(model)
            tokenizer = (
                self.handle(model, self.spec.models[model].seeds[0]).tokenizer
                if pspec.file is not None
                else None
            )
            self._prompts[cache_key] = build_prompts(
                name, pspec, self.base_dir, tokenizer=tokenizer, d_vocab=info.d_vocab
            )
        return self._prompts[cache_key]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle, self._handle_id = None, None
