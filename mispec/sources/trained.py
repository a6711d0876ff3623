"""``train:`` — a toy model that mispec trains on an algorithmic task.

Every step from 0 to ``train.steps`` exists (they are trained on demand); a checkpoint is
identified by its training run (``mispec.models.runs.training_identity``: the config without
``steps``, the task's full arguments and the seed) and its step. Training itself lives in
``mispec.models.training``; the run's files in ``<store>/checkpoints/<training identity>/``.

A model may start from another entry's checkpoint (``init_from``) and edit its initial weights
with copies from others (``init``): :meth:`TrainedSource.bind` keeps the spec's sources, and the
run's identity then includes the checkpoint identities it starts from (its *lineage*), so a
changed parent re-trains exactly its descendants. Checks of these references live in
:mod:`mispec.sources.trained_checks`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mispec.errors import Problem, UserError
from mispec.hashing import content_key
from mispec.models import runs
from mispec.models.checkpoint_layout import MODEL_FILE, OPTIM_FILE
from mispec.sources.base import CheckpointHandle, ModelSource
from mispec.spec.schema import CheckpointRef, Selector, TrainedModelSpec, TrainSpec

if TYPE_CHECKING:
    import torch

    from mispec.models.info import ModelInfo
    from mispec.models.init_weights import Start, State
    from mispec.spec.yaml_source import SourceMap

# A toy trainer: a model above this many parameters is a typo (or the wrong tool).
MAX_TRAIN_PARAMS = 1_000_000_000


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

    def refs(self) -> list[tuple[tuple[str | int, ...], CheckpointRef]]:
        """The checkpoints this model starts from, with their key path under ``train``."""
        out: list[tuple[tuple[str | int, ...], CheckpointRef]] = []
        if self.train.init_from is not None:
            out.append((("init_from",), self.train.init_from))
        for i, op in enumerate(self.train.init):
            if op.source is not None:
                out.append((("init", i, "from"), op.source))
        return out

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
        if not self.refs():
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
        return [(ref.model, seed if ref.seed is None else ref.seed) for _, ref in self.refs()]

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

    def prepare_together(
        self,
        steps: dict[int, list[int]],
        store_dir: Path,
        *,
        progress: bool = True,
        on_checkpoint: dict[int, Callable[..., dict[str, float]]] | None = None,
    ) -> int:
        """:meth:`prepare` for several seeds (``seed -> steps``), trained together where
        they can be (:mod:`mispec.models.training_batched`); the steps trained in all."""
        from mispec.models.training_batched import SeedJob, ensure_trained_together

        live = on_checkpoint or {}
        jobs = [
            SeedJob(seed, s, on_checkpoint=live.get(seed), **self._how(seed, store_dir))
            for seed, s in steps.items()
        ]
        reports = ensure_trained_together(self.name, self.train, jobs, store_dir, progress=progress)
        return sum(r.steps_trained for r in reports.values())

    def _how(self, seed: int, store_dir: Path) -> dict:
        """``ensure_trained``'s lineage, start and hold for this seed."""
        from mispec.models.weight_targets import select

        hold = None
        if self.train.freeze is not None:
            cfg = runs.native_config(self.train, seed)
            hold = select(list(self.train.freeze.heads), list(self.train.freeze.params), cfg)[0]
        lineage = self.lineage(seed)
        start = self._start(seed, store_dir) if lineage or self.train.init else None
        return {"lineage": lineage, "start": start, "hold": hold}

    def _start(self, seed: int, store_dir: Path) -> Callable[[State], Start]:
        """Step 0 from the fresh initialisation: the ``init_from`` checkpoint, then surgery."""
        from mispec.models.init_weights import Start, apply_surgery, check_compatible
        from mispec.models.native import key_map

        def load(ref: CheckpointRef, optimizer: bool = False) -> Start:
            source, s, step = self.ref_point(ref, seed)
            start = checkpoint_start(source, s, step, store_dir, optimizer=optimizer)
            trained[0] += start.steps_trained
            return start

        trained = [0]

        def start(fresh: State) -> Start:
            weights, opt = fresh, None
            if self.train.init_from is not None:
                carry = self.train.init_from.optimizer == "carry"
                begin = load(self.train.init_from, carry)
                check_compatible(begin.weights, fresh, self.train.init_from.model)
                weights, opt = begin.weights, begin.optimizer
            if self.train.init:
                kwargs = runs.native_config(self.train, seed)
                donors = [
                    (lambda ref=op.source: load(ref).weights) if op.source is not None else None
                    for op in self.train.init
                ]
                weights = apply_surgery(
                    weights, list(self.train.init), donors, kwargs, key_map(kwargs), seed
                )
            return Start(weights, opt, trained[0])

        return start

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
        from mispec.models.read_ahead import ReadAhead

        folder = runs.run_dir(self.train, seed, store_dir, self.lineage(seed))
        identity = runs.training_identity(self.train, seed, self.lineage(seed))
        train, name = self.train, self.name
        prepare = self.prepare
        saved: list[int] = []  # listed at the first load (training runs before it)

        def expect(step: int) -> dict[str, str]:  # what the file must say it is
            return runs.file_identity(identity, seed, step, "model")

        def read(step: int) -> tuple[dict[str, torch.Tensor], list[str]]:
            path = folder / MODEL_FILE.format(step=step)
            found = ckpt.read_file(path, expect=expect(step))
            return found.tensors, found.nonfinite_names()

        ahead = ReadAhead(read)

        def state_for(step: int) -> dict[str, torch.Tensor]:
            early = ahead.take(step)
            if not saved:
                saved.extend(sorted(runs.saved_steps(train, seed, store_dir, self.lineage(seed))))
            ahead.start(next((s for s in saved if s > step), None))
            if early is not None and not early[1]:
                return early[0]  # read, verified and finite: what read_finite returns
            path = folder / MODEL_FILE.format(step=step)
            if path.is_file():
                try:  # a NaN/inf checkpoint raises TrainingDivergedError
                    return read_finite(
                        path, name=name, train=train, seed=seed, step=step, expect=expect(step)
                    )[0]
                except ckpt.CorruptCheckpoint as exc:
                    warnings.warn(f"{exc}; training step {step} again", stacklevel=4)
                    path.unlink(missing_ok=True)
            trained = prepare(seed, [step], store_dir, progress=True)
            self._trained_on_load[seed] = self._trained_on_load.get(seed, 0) + trained
            return read_finite(
                path, name=name, train=train, seed=seed, step=step, expect=expect(step)
            )[0]

        return state_for

    def take_steps_trained_on_load(self, seed: int) -> int:
        return self._trained_on_load.pop(seed, 0)

    # ------------------------------------------------------------------ validation
    def check(self, source_map: SourceMap) -> list[Problem]:
        """The task and its ``task_args`` (or each mixture task's); the selector (once the
        task is known); the tokenizer folder; the models it starts from (``init_from``,
        ``init``: :mod:`mispec.sources.trained_checks`)."""
        from mispec.sources.trained_checks import check_freeze, check_mixture_tasks, check_refs
        from mispec.tasks import TASKS
        from mispec.validation.checks import _fn_params, _lookup, check_args

        problems: list[Problem] = []
        path = ("models", self.name, "train")
        if self.train.task is not None:
            task = _lookup(
                TASKS, self.train.task, (*path, "task"), source_map, problems, self.base_dir
            )
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
        else:
            problems += check_mixture_tasks(self, source_map)
        if not problems:
            problems += self.check_selector(source_map)
        problems += check_refs(self, source_map)
        if not problems:
            problems += check_freeze(self, source_map)
        return problems + self.check_tokenizer(source_map)

    def check_built(self, source_map: SourceMap) -> list[Problem]:
        """The task's argument values, the architecture against the task, the model's size."""
        from mispec.sources.trained_checks import check_weights

        try:
            cfg = runs.native_config(self.train, self.entry.seeds[0])
        except UserError as exc:
            where = "arch" if str(exc).startswith("arch.") else "task_args"
            if where == "task_args" and self.train.mixture is not None:
                where = "mixture"
            return [self.problem(source_map, ("train", where), str(exc))]
        problems = check_weights(self, source_map)
        if problems:
            return problems
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


def checkpoint_start(
    source: ModelSource, seed: int, step: int, store_dir: Path, *, optimizer: bool = False
) -> Start:
    """The weights (bridge keys) of ``source``'s checkpoint, its optimizer state when asked
    (``train:`` sources only) and the steps trained to provide them."""
    from mispec.models.init_weights import Start

    if isinstance(source, TrainedSource):
        from mispec.models.checkpoints import optimizer_from_tensors
        from mispec.models.divergence import read_finite

        trained = source.prepare(seed, [step], store_dir, progress=False)
        lineage = source.lineage(seed)
        folder = runs.run_dir(source.train, seed, store_dir, lineage)
        identity = runs.training_identity(source.train, seed, lineage)

        def read(file: str, kind: str) -> tuple[dict, dict]:
            path = folder / file.format(step=step)
            return read_finite(
                path,
                name=source.name,
                train=source.train,
                seed=seed,
                step=step,
                expect=runs.file_identity(identity, seed, step, kind),
            )

        weights = read(MODEL_FILE, "model")[0]
        opt = None
        if optimizer:
            tensors, meta = read(OPTIM_FILE, "optim")
            opt = optimizer_from_tensors(tensors, meta)
        return Start(weights, opt, trained)
    handle = source.open(seed, store_dir)
    try:
        bridge = handle.load(step)
        weights = {k: v.detach().to("cpu").clone() for k, v in bridge.state_dict().items()}
    finally:
        handle.close()
    return Start(weights, None, 0)
