"""``train:`` — a toy model that mispec trains on an algorithmic task.

Every step from 0 to ``train.steps`` exists (they are trained on demand); a checkpoint is
identified by its training run (``mispec.models.runs.training_identity``: the config without
``steps``, the task's full arguments and the seed) and its step. Training itself lives in
``mispec.models.training``; the run's files in ``<store>/checkpoints/<training identity>/``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mispec.errors import Problem, UserError
from mispec.hashing import content_key
from mispec.models import runs
from mispec.sources.base import CheckpointHandle, ModelSource
from mispec.spec.schema import Selector, TrainedModelSpec, TrainSpec

if TYPE_CHECKING:
    import torch

    from mispec.models.info import ModelInfo
    from mispec.spec.yaml_source import SourceMap

# A toy trainer: a model above this many parameters is a typo (or the wrong tool).
MAX_TRAIN_PARAMS = 1_000_000_000


class TrainedSource(ModelSource):
    kind = "train"
    entry_type = TrainedModelSpec
    entry: TrainedModelSpec

    @property
    def train(self) -> TrainSpec:
        return self.entry.train

    # ------------------------------------------------------------------ planning
    def default_selector(self) -> Selector:
        """``{schedule: log, count: 32}``: dense early, where training dynamics happen."""
        from mispec.spec.selectors import DEFAULT_TRAIN_SELECTOR

        return DEFAULT_TRAIN_SELECTOR

    def available_steps(self, seed: int) -> list[int]:
        return list(range(self.train.steps + 1))

    def checkpoint_identity(self, seed: int, step: int) -> str:
        return content_key(runs.training_identity(self.train, seed), step)

    def source_identity(self) -> str:
        return content_key(self.kind, "train", self.entry.tokenizer)

    def info(self) -> ModelInfo:
        return runs.train_info(self.name, self.train)

    def tokens_per_step(self) -> int | None:
        if self.train.batch_size is None:
            return None
        return self.train.batch_size * self.info().n_ctx

    # ------------------------------------------------------------------ preparation
    def own_tokenizer(self) -> bool | None:
        """A toy model works on token ids: it has no tokenizer (the spec may name one)."""
        return False

    def training_identity(self, seed: int) -> str:
        return runs.training_identity(self.train, seed)

    def training_steps_left(
        self, seed: int, steps: list[int], store_dir: Path | None
    ) -> int | None:
        """From the latest saved step at or before the first missing one to the last missing."""
        saved = runs.saved_steps(self.train, seed, store_dir) if store_dir is not None else set()
        missing = [s for s in steps if s not in saved]
        if not missing:
            return None
        return max(missing) - max([s for s in saved if s <= min(missing)], default=0)

    def prepare(
        self,
        seed: int,
        steps: list[int],
        store_dir: Path,
        *,
        progress: bool = True,
        on_checkpoint: Callable[..., dict[str, float]] | None = None,
    ) -> int:
        from mispec.models.training import ensure_trained

        report = ensure_trained(
            self.name,
            self.train,
            seed,
            steps,
            store_dir,
            progress=progress,
            on_checkpoint=on_checkpoint,
        )
        return report.steps_trained

    # ------------------------------------------------------------------ loading
    def open(
        self, seed: int, store_dir: Path, *, device: str = "cpu", dtype: str = "float32"
    ) -> CheckpointHandle:
        """The native swap route over the run's ``model_<N>.safetensors``; a step that is
        not saved yet (or is corrupt) is trained (again) on first load."""
        from mispec.models.handle import ModelHandle, NativeSwap

        return ModelHandle(
            self.name,
            seed,
            self.info(),
            NativeSwap(runs.native_config(self.train, seed), self._state_for(seed, store_dir)),
            steps=self.available_steps(seed),
            tokenizer=self.tokenizer_loader(),
            device=device,
            dtype=dtype,
        )

    def _state_for(self, seed: int, store_dir: Path) -> Callable[[int], dict[str, torch.Tensor]]:
        from mispec.models import checkpoints as ckpt
        from mispec.models.divergence import read_finite
        from mispec.models.training import ensure_trained

        folder = runs.run_dir(self.train, seed, store_dir)
        train, name = self.train, self.name

        def state_for(step: int) -> dict[str, torch.Tensor]:
            path = folder / runs.MODEL_FILE.format(step=step)
            if path.is_file():
                try:  # a NaN/inf checkpoint raises TrainingDivergedError
                    return read_finite(path, name=name, train=train, seed=seed, step=step)[0]
                except ckpt.CorruptCheckpoint as exc:
                    warnings.warn(f"{exc}; training step {step} again", stacklevel=4)
                    path.unlink(missing_ok=True)
            ensure_trained(name, train, seed, [step], store_dir, progress=True)
            return read_finite(path, name=name, train=train, seed=seed, step=step)[0]

        return state_for

    # ------------------------------------------------------------------ validation
    def check(self, source_map: SourceMap) -> list[Problem]:
        """The task and its ``task_args``; the selector (once the task is known); the
        tokenizer folder."""
        from mispec.spec.checks import _fn_params, _lookup, check_args
        from mispec.tasks import TASKS

        problems: list[Problem] = []
        path = ("models", self.name, "train")
        task = _lookup(TASKS, self.train.task, (*path, "task"), source_map, problems, self.base_dir)
        if task is not None:
            check_args(
                self.train.task_args,
                _fn_params(task),
                getattr(task, "__globals__", {}),
                (*path, "task_args"),
                source_map,
                problems,
                f"task '{self.train.task}'",
            )
            problems += self.check_selector(source_map)
        return problems + self.check_tokenizer(source_map)

    def check_built(self, source_map: SourceMap) -> list[Problem]:
        """The task's argument values, the architecture against the task, the model's size."""
        try:
            cfg = runs.native_config(self.train, self.entry.seeds[0])
        except UserError as exc:
            where = "arch" if str(exc).startswith("arch.") else "task_args"
            return [self.problem(source_map, ("train", where), str(exc))]
        d, layers = cfg["d_model"], cfg["n_layers"]
        attn = 4 * cfg["n_heads"] * cfg["d_head"] * d
        mlp = 0 if cfg["attn_only"] else 2 * d * cfg.get("d_mlp", 4 * d)
        params = 2 * cfg["d_vocab"] * d + cfg["n_ctx"] * d + layers * (attn + mlp)
        if params <= MAX_TRAIN_PARAMS:
            return []
        return [
            self.problem(
                source_map,
                ("train", "arch"),
                f"this model would have about {params:.1e} parameters (~{params * 16 / 2**30:.0f}"
                f" GiB to train with Adam); mispec trains toy models of at most "
                f"{MAX_TRAIN_PARAMS:.0e}: check d_model, d_head, n_heads, n_layers and d_mlp",
            )
        ]
