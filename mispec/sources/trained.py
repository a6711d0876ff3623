"""``train:`` — a toy model that mispec trains on an algorithmic task.

Every step from 0 to ``train.steps`` exists (they are trained on demand); a checkpoint is
identified by its training run (``mispec.models.runs.training_identity``: the config without
``steps``, the task's full arguments and the seed) and its step. Training itself lives in
``mispec.models.training``; the run's files in ``<store>/checkpoints/<training identity>/``.

A model may start from another entry's checkpoint (``init_from``) and edit its initial weights
with copies from others (``init``): :meth:`TrainedSource.bind` keeps the spec's sources, and the
run's identity then includes the checkpoint identities it starts from (its *lineage*), so a
changed parent re-trains exactly its descendants. The entry (:class:`TrainedModelSpec`) is
defined here; its checks live in :mod:`mispec.sources.trained_checks` and
:mod:`mispec.sources.trained_shapes`, the start from other checkpoints in
:mod:`mispec.sources.trained_start`, the reading of the run's files in
:mod:`mispec.sources.trained_files`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mispec.errors import Problem, UserError
from mispec.hashing import content_key
from mispec.models import runs
from mispec.sources import trained_files
from mispec.sources.base import CheckpointHandle, ModelSource
from mispec.sources.trained_checks import check_freeze, check_mixture_tasks, check_refs, check_task
from mispec.sources.trained_shapes import check_config
from mispec.sources.trained_start import start_from
from mispec.spec.fields import Name
from mispec.spec.model_entry import FirstSourceEntry
from mispec.spec.selectors import Selector
from mispec.spec.sweep import SweepPoint
from mispec.spec.train import RefineSpec, TrainSpec
from mispec.spec.weight_edits import CheckpointRef

if TYPE_CHECKING:
    from mispec.models.info import ModelInfo
    from mispec.models.init_weights import Start
    from mispec.models.training_batched import SeedJob
    from mispec.spec.yaml_source import SourceMap


class TrainedModelSpec(FirstSourceEntry):
    """``train:`` a toy model that mispec trains (every step exists)."""

    source_key = "train"
    dumped_when_set = ("refine", "live", "sweep", "sweep_point")

    train: TrainSpec = Field(description="a toy model mispec trains itself on an algorithmic task")
    refine: RefineSpec | None = Field(
        default=None, description="add checkpoints where a transition happens (adaptive)"
    )
    live: list[Name] | None = Field(
        default=None,
        description="metrics computed inside the training loop at checkpoint steps, shown live",
    )
    sweep: dict[str, Any] | None = Field(
        default=None,
        description="a grid of training settings: key paths under train (optimizer.lr, "
        "task_args.train_frac, arch.n_layers, steps) -> lists of values; a full grid unless "
        "zipped (zip: [[a, b]]); max_points: N for a grid over 64 points. Each point is the "
        "entry with those values; its results gain one dim per swept key",
    )
    sweep_point: SweepPoint | None = Field(
        default=None, description="set by mispec on each point of a sweep (not written by hand)"
    )


class TrainedSource(ModelSource):
    kind = "train"
    entry_type = TrainedModelSpec
    entry: TrainedModelSpec
    others: dict[str, ModelSource] | None = None  # the spec's sources, once bound

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trained_on_load: dict[int, int] = {}  # seed -> updates run on load (repairs)

    @property
    def train(self) -> TrainSpec:
        return self.entry.train

    # ------------------------------------------------------------------ relations
    def bind(self, sources: dict[str, ModelSource]) -> None:
        self.others = sources

    def ref_source(self, ref: CheckpointRef) -> ModelSource:
        if self.others is None or ref.model not in self.others:
            raise UserError(f"model '{self.name}' refers to unknown model '{ref.model}'")
        return self.others[ref.model]

    def ref_point(self, ref: CheckpointRef, seed: int) -> tuple[ModelSource, int, int]:
        """(source, seed, step) of a reference from this model's ``seed``."""
        source = self.ref_source(ref)
        ref_seed = seed if ref.seed is None else ref.seed
        step = source.available_steps(ref_seed)[-1] if ref.step == "last" else ref.step
        return source, ref_seed, step

    def lineage(self, seed: int) -> runs.Lineage | None:
        """The checkpoint identities this seed's run starts from (``None``: a fresh start)."""
        if not self.train.checkpoint_refs():
            return None
        out: runs.Lineage = {"init_from": None, "from": []}
        if self.train.init_from is not None:
            source, s, step = self.ref_point(self.train.init_from, seed)
            out["init_from"] = {
                "checkpoint": source.checkpoint_identity(s, step),
                "optimizer": self.train.init_from.optimizer,
            }
        for op in self.train.init:
            if op.source is None:
                out["from"].append(None)
            else:
                source, s, step = self.ref_point(op.source, seed)
                out["from"].append(source.checkpoint_identity(s, step))
        return out

    def depends_on(self, seed: int) -> list[tuple[str, int]]:
        return [
            (ref.model, seed if ref.seed is None else ref.seed)
            for _, ref in self.train.checkpoint_refs()
        ]

    # ------------------------------------------------------------------ planning
    def default_selector(self) -> Selector:
        """``{schedule: log, count: 32}``: dense early, where training dynamics happen."""
        from mispec.spec.selectors import DEFAULT_TRAIN_SELECTOR

        return DEFAULT_TRAIN_SELECTOR

    def available_steps(self, seed: int) -> list[int]:
        return list(range(self.train.steps + 1))

    def checkpoint_identity(self, seed: int, step: int) -> str:
        return content_key(self.training_identity(seed), step)

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
        """The run's identity (asked once per checkpoint by the planner: kept per seed; it
        depends only on the spec)."""
        known = self.__dict__.setdefault("_identities", {})
        if seed not in known:
            known[seed] = runs.training_identity(self.train, seed, self.lineage(seed))
        return str(known[seed])

    def training_steps_left(
        self, seed: int, steps: list[int], store_dir: Path | None
    ) -> int | None:
        """From the latest saved step at or before the first missing one to the last missing."""
        saved = (
            runs.saved_steps(self.train, seed, store_dir, self.lineage(seed))
            if store_dir is not None
            else set()
        )
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
            **self._how(seed, store_dir),
            on_checkpoint=on_checkpoint,
        )
        return report.steps_trained

    def train_job(
        self,
        seed: int,
        steps: list[int],
        store_dir: Path,
        *,
        on_checkpoint: Callable[..., dict[str, float]] | None = None,
    ) -> SeedJob:
        """What :func:`~mispec.models.training_batched.ensure_runs_trained_together` needs to
        train ``seed`` of this model to ``steps`` beside other runs."""
        from mispec.models.training_batched import SeedJob

        how = self._how(seed, store_dir)
        return SeedJob(
            seed, steps, on_checkpoint=on_checkpoint, name=self.name, train=self.train, **how
        )

    def _how(self, seed: int, store_dir: Path) -> dict:
        """``ensure_trained``'s lineage, start and hold for this seed."""
        from mispec.models.weight_targets import select

        hold = None
        if self.train.freeze is not None:
            cfg = runs.native_config(self.train, seed)
            hold = select(list(self.train.freeze.heads), list(self.train.freeze.params), cfg)[0]
        lineage = self.lineage(seed)
        start = (
            start_from(self.train, seed, store_dir, lambda ref: self.ref_point(ref, seed))
            if lineage or self.train.init
            else None
        )
        return {"lineage": lineage, "start": start, "hold": hold}

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

    def _state_for(self, seed: int, store_dir: Path) -> Callable[[int], dict[str, Any]]:
        def train_again(step: int) -> None:  # a step not saved yet, or corrupt
            trained = self.prepare(seed, [step], store_dir, progress=True)
            self._trained_on_load[seed] = self._trained_on_load.get(seed, 0) + trained

        return trained_files.state_reader(
            self.name, self.train, seed, store_dir, self.lineage(seed), train_again
        )

    def checkpoint_weights(
        self, seed: int, step: int, store_dir: Path, *, optimizer: bool = False
    ) -> Start:
        """Read from the run's files (trained first where missing), with the optimizer state
        when asked."""
        from mispec.models.init_weights import Start

        trained = self.prepare(seed, [step], store_dir, progress=False)
        weights, opt = trained_files.saved_checkpoint(
            self.name, self.train, seed, step, store_dir, self.lineage(seed), optimizer=optimizer
        )
        return Start(weights, opt, trained)

    def take_steps_trained_on_load(self, seed: int) -> int:
        return self._trained_on_load.pop(seed, 0)

    def train_spec(self) -> TrainSpec:
        return self.train

    # ------------------------------------------------------------------ validation
    def check(self, source_map: SourceMap) -> list[Problem]:
        """The task and its ``task_args`` (or each mixture task's); the selector (once the
        task is known); the tokenizer folder; the models it starts from (``init_from``,
        ``init``) and what it freezes (:mod:`mispec.sources.trained_checks`)."""
        problems: list[Problem] = []
        if self.train.task is not None:
            where = ("models", self.name, "train")
            problems += check_task(
                self.train.task, self.train.task_args, where, source_map, self.base_dir
            )
        else:
            problems += check_mixture_tasks(self, self.train, source_map)
        if not problems:
            problems += self.check_selector(source_map)
        problems += check_refs(self, self.train, self.others or {}, source_map)
        if not problems:
            problems += check_freeze(self, self.train, source_map)
        return problems + self.check_tokenizer(source_map)

    def check_built(self, source_map: SourceMap) -> list[Problem]:
        """The task's argument values, the architecture against the task and the models it
        starts from, the model's size (:mod:`mispec.sources.trained_shapes`)."""
        return check_config(self, self.train, self.others or {}, source_map)
