"""Everything one process needs to run plan nodes: the spec, the plan, the store, the
profile, and a pool holding ONE model bridge at a time (weights swapped per checkpoint)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mispec.planning.graph import Plan
from mispec.prompts.core import PromptSet
from mispec.store.store import Store
from mispec.store.writer import InlineWriter


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
    # vmapped forward calls that evaluated several checkpoints at once (each checkpoint's
    # forward pass still counts in forward_passes): mispec/execute/work/batched.py
    batched_forward_calls: int = 0

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
    # where store writes go: at once (default) or a BackgroundWriter (the local executor)
    writer: Any = field(default_factory=InlineWriter)
    # the cells and reductions this run computed, by content key: read back from memory (by
    # later groups, reductions and the assembly) instead of from the store
    fresh: dict[str, Any] = field(default_factory=dict)
    # activations computed ahead for the next checkpoint groups, several checkpoints per
    # forward call (a ``mispec.execute.work.batched.Prefetched``; None: none were)
    prefetched: Any = None

    @property
    def spec(self) -> Any:
        return self.plan.spec

    def handle(self, model: str, seed: int) -> Any:
        """The opened (model, seed) (its source's handle); the previous one is closed
        (bounded memory)."""
        if self._handle_id != (model, seed):
            self.close()
            self._handle = self.plan.resolution.sources[model].open(
                seed,
                self.store.root,
                device=self.model_device(model),
                dtype=self.spec.models[model].dtype,
            )
            self._handle_id = (model, seed)
        return self._handle

    def counted_load(self, model: str, seed: int, n: int = 1) -> None:
        """Count ``n`` checkpoints of (model, seed) loaded, and the training that loading
        them ran (a corrupt checkpoint is trained again on load)."""
        self.counters.checkpoints_loaded += n
        source = self.plan.resolution.sources[model]
        self.counters.training_steps += source.take_steps_trained_on_load(seed)

    def info(self, model: str) -> Any:
        """The model's ``ModelInfo``, read once per run (a ``path:`` model reads its config)."""
        if model not in self._infos:
            self._infos[model] = self.plan.resolution.sources[model].info()
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
        from mispec.execute.work.prompts import build_prompts

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
                name,
                pspec,
                self.base_dir,
                tokenizer=tokenizer,
                d_vocab=info.d_vocab,
                n_ctx=info.n_ctx,
            )
        return self._prompts[cache_key]

    def read_cell(self, key: str) -> Any | None:
        """A cell or reduction: computed by this run, else from the store (None if absent or
        corrupt: the store then removed it with a warning)."""
        if key in self.fresh:
            return self.fresh[key]
        return self.store.cells.read(key)

    def write_cell(self, key: str, array: Any) -> None:
        """Keep a computed cell (in memory for this run) and queue its store write."""
        self.fresh[key] = array
        cells = self.store.cells
        self.writer.submit(array.nbytes, lambda: cells.write_encoded(key, cells.encode(array, key)))

    def write_activation(
        self,
        forward_key: str,
        hook: str,
        values: Any,
        *,
        source_dtype: str,
        shared_with: Any = None,
    ) -> None:
        """Queue an activation for the cache. ``values`` (numpy) is encoded by the writer, so
        it must not change meanwhile: when it shares memory with a tensor the metrics read,
        ``shared_with`` is that tensor, and an entry whose tensor a metric modified in place
        before it was encoded is dropped with a warning (the cache never holds values other
        than the forward pass's)."""
        acts = self.store.activations
        version = shared_with._version if shared_with is not None else None

        def encode_and_publish() -> None:
            entry = acts.prepare(forward_key, hook, values, source_dtype=source_dtype)
            if shared_with is not None and shared_with._version != version:
                warnings.warn(
                    f"mispec: a metric modified the activation '{hook}' in place, so it is not "
                    "cached (metrics must not modify their inputs: the next metric reads them "
                    "too)",
                    stacklevel=1,
                )
                return
            acts.publish(forward_key, hook, entry)

        self.writer.submit(values.nbytes, encode_and_publish)
        self.counters.activations_written += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        self._handle, self._handle_id = None, None
