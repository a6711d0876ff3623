"""Training toy models on algorithmic tasks, deterministic and resumable.

``ensure_trained`` makes sure every requested step of a run is saved. It never retrains
a saved step: it resumes from the last saved step at or before the first missing one,
restoring weights *and* optimizer state, and trains forward, saving each missing step on
the way. Since the batch of update ``t`` depends only on ``(seed, t)``, the learning rate
only on ``t`` (linear warmup, then constant), and the initialisation only on the seed,
a resumed run is bitwise identical to a straight one on the same device (CPU), and two
runs with one seed are bitwise identical.

Step ``N`` means "after ``N`` optimizer updates"; step 0 is the initialisation. The loss
is the mean next-token cross-entropy over the task's ``loss_mask``.

A run may start from another checkpoint and surgery on its weights, and hold some entries
fixed (``init_from``, ``init``, ``freeze``: :mod:`mispec.models.init_weights`); its folder is
then named by an identity that includes those checkpoints' (``lineage``), and its steps count
from its own start.

A run that diverges (a NaN or an inf in the loss, a gradient, the weights or the optimizer
state) stops with :class:`~mispec.errors.TrainingDivergedError` before anything non-finite
is saved, and a non-finite checkpoint is never loaded (``mispec.models.divergence``).
"""

from __future__ import annotations

import platform
import warnings
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mispec.errors import UserError
from mispec.models import checkpoints as ckpt
from mispec.models.divergence import FiniteWatch, check_state, read_finite
from mispec.models.init_weights import Hold, Start, State, check_compatible
from mispec.models.native import KeyMap, key_map, load_bridge_state, plain_model, to_bridge_state
from mispec.models.runs import (
    MODEL_FILE,
    OPTIM_FILE,
    TRAINER_VERSION,
    Lineage,
    TrainReport,
    native_config,
    run_dir,
    saved_steps,
    training_identity,
)
from mispec.models.weight_targets import Selection
from mispec.spec.schema import OptimizerSpec, TrainSpec
from mispec.tasks import Task, task_for


def make_optimizer(
    params: Iterable[torch.nn.Parameter], spec: OptimizerSpec
) -> torch.optim.Optimizer:
    params = list(params)
    if spec.name == "adamw":
        return torch.optim.AdamW(
            params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay
        )
    if spec.name == "adam":
        return torch.optim.Adam(
            params, lr=spec.lr, betas=spec.betas, weight_decay=spec.weight_decay
        )
    return torch.optim.SGD(
        params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
    )


def learning_rate(train: TrainSpec, update: int) -> float:
    """LR of update ``update`` (0-based): linear warmup over ``warmup_steps``, then flat."""
    lr = train.optimizer.lr
    if train.warmup_steps and update < train.warmup_steps:
        return lr * (update + 1) / train.warmup_steps
    return lr


def masked_loss(
    logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, dtype: str | None = None
) -> torch.Tensor:
    """Mean next-token cross-entropy over the predictions selected by ``mask`` [b, n-1],
    computed in ``dtype`` (``float64``: the log-softmax of a confident prediction no longer
    rounds to multiples of float32's 1.2e-7, which makes loss spikes once the loss is tiny)."""
    pred = logits[:, :-1][mask].to(torch.float64 if dtype == "float64" else torch.float32)
    return F.cross_entropy(pred, tokens[:, 1:][mask])


class _Run:
    """One (train spec, seed) run folder: load/save steps, verify files."""

    def __init__(
        self, name: str, train: TrainSpec, seed: int, store_dir: Path, lineage: Lineage | None
    ):
        self.name, self.train, self.seed, self.lineage = name, train, seed, lineage
        self.dir = run_dir(train, seed, store_dir, lineage)
        self.identity = training_identity(train, seed, lineage)

    def model_path(self, step: int) -> Path:
        return self.dir / MODEL_FILE.format(step=step)

    def optim_path(self, step: int) -> Path:
        return self.dir / OPTIM_FILE.format(step=step)

    def discard(self, step: int, reason: Exception) -> None:
        warnings.warn(f"{reason}; discarding step {step} and training it again", stacklevel=3)
        for p in (self.model_path(step), self.optim_path(step)):
            p.unlink(missing_ok=True)

    def load(self, step: int) -> dict[str, torch.Tensor]:
        """The weights of ``step``: checksum verified, refused when non-finite."""
        return self.read(self.model_path(step), step)[0]

    def read(self, path: Path, step: int) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """A checkpoint file of this run: checksum verified, refused when non-finite."""
        return read_finite(path, name=self.name, train=self.train, seed=self.seed, step=step)

    def save(
        self, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer, keys: KeyMap
    ) -> None:
        """Write the weights and optimizer state of ``step``, refusing non-finite ones."""
        meta = {"step": str(step), "training_identity": self.identity, "format": "mispec-native/1"}
        tensors, ometa = ckpt.optimizer_to_tensors(opt.state_dict())
        weights = to_bridge_state(model, keys)
        check_state(self.name, self.train, self.seed, step, {**tensors, **weights})
        ckpt.write_tensors(self.optim_path(step), tensors, {**meta, **ometa})
        ckpt.write_tensors(self.model_path(step), weights, meta)

    def write_config(self, kwargs: dict[str, Any], task: Task) -> None:
        path = self.dir / "config.json"
        if path.is_file():
            return
        import transformer_lens

        ckpt.write_json(
            path,
            {
                "format": "mispec-native/1",
                "training_identity": self.identity,
                "trainer_version": TRAINER_VERSION,
                "seed": self.seed,
                "tl_config": kwargs,
                "train": self.train.model_dump(mode="json", exclude={"steps"}),
                "lineage": self.lineage,
                "task": task.describe(),
                "versions": {
                    "torch": torch.__version__,
                    "transformer_lens": getattr(transformer_lens, "__version__", "?"),
                    "python": platform.python_version(),
                },
            },
        )


def _verified(run: _Run, steps: Iterable[int]) -> set[int]:
    """The ``steps`` whose weights pass their checksum; corrupt ones are discarded (a
    non-finite one raises :class:`~mispec.errors.TrainingDivergedError`)."""
    good = set()
    for step in steps:
        try:
            run.load(step)
            good.add(step)
        except ckpt.CorruptCheckpoint as exc:
            run.discard(step, exc)
    return good


def _resume_point(run: _Run, saved: set[int], first_missing: int):
    """(step, weights, optimizer state) of the latest loadable saved step <= first_missing."""
    for step in sorted((s for s in saved if s <= first_missing), reverse=True):
        try:
            weights = run.load(step)
            otensors, ometa = run.read(run.optim_path(step), step)
            return step, weights, ckpt.optimizer_from_tensors(otensors, ometa)
        except (ckpt.CorruptCheckpoint, KeyError) as exc:
            run.discard(step, exc)
    return None


def ensure_trained(
    name: str,
    train: TrainSpec,
    seed: int,
    steps: list[int],
    store_dir: Path,
    *,
    progress: bool = True,
    lineage: Lineage | None = None,
    start: Callable[[State], Start] | None = None,
    hold: Selection | None = None,
    on_checkpoint: Callable[[int, dict[str, torch.Tensor]], dict[str, float]] | None = None,
) -> TrainReport:
    """Train (or resume) until every step in ``steps`` is saved in the store.

    ``start`` turns the fresh initialisation (bridge keys) into the run's step 0 when the run
    does not start fresh (``lineage`` then names what it starts from); ``hold`` selects the
    weight entries kept at their step-0 values (see :mod:`mispec.models.init_weights`).
    ``on_checkpoint(step, weights)`` is called with each newly saved step's weights (bridge
    keys, the very values saved) and returns numbers to show in the progress bar (live
    metrics, ``mispec.execute.live``)."""
    wanted = sorted({int(s) for s in steps})
    if wanted and wanted[0] < 0:
        raise UserError(f"model '{name}': negative training step {wanted[0]}")
    run = _Run(name, train, seed, store_dir, lineage)
    saved = saved_steps(train, seed, store_dir, lineage)
    valid = _verified(run, [s for s in wanted if s in saved])
    missing = [s for s in wanted if s not in valid]
    if not missing:
        return TrainReport()
    task = task_for(train)
    if train.batch_size is None and not task.full_batch:
        task.batch(seed, 0, None)  # raises the task's explanation
    kwargs = native_config(train, seed, task)
    run.write_config(kwargs, task)
    device = torch.device(train.device)
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[
        train.dtype
    ]
    keys = key_map(kwargs)
    model = plain_model(kwargs).to(device=device, dtype=dtype).train()
    opt = make_optimizer(model.parameters(), train.optimizer)
    resume = _resume_point(run, saved_steps(train, seed, store_dir, lineage), missing[0])
    start_step, elsewhere = 0, 0
    if resume is not None:
        start_step, weights, opt_state = resume
        load_bridge_state(model, {k: v.to(device) for k, v in weights.items()}, keys)
        opt.load_state_dict(opt_state)
    elif start is not None:
        fresh = to_bridge_state(model, keys)
        begin = start(fresh)
        check_compatible(begin.weights, fresh, name)
        load_bridge_state(model, {k: v.to(device, dtype) for k, v in begin.weights.items()}, keys)
        if begin.optimizer is not None:  # carry the state, keep this run's hyperparameters
            groups = opt.state_dict()["param_groups"]
            opt.load_state_dict({"state": begin.optimizer["state"], "param_groups": groups})
        elsewhere = begin.steps_trained
    held = Hold(model, hold, keys) if hold else None
    todo = set(missing)
    saved_now: list[int] = []
    live: dict[str, float] = {}
    if start_step in todo:  # only step 0 can be missing here
        run.save(start_step, model, opt, keys)
        saved_now.append(start_step)
        if on_checkpoint is not None:
            live = on_checkpoint(start_step, to_bridge_state(model, keys))
    last = missing[-1]
    watch = FiniteWatch(name, train, seed)
    bar = _progress(name, seed, start_step, last) if progress else nullcontext(None)
    with bar as bar_state:
        for t in range(start_step, last):
            for group in opt.param_groups:
                group["lr"] = learning_rate(train, t)
            b = task.batch(seed, t, train.batch_size)
            tokens = torch.from_numpy(b.tokens).to(device)
            mask = torch.from_numpy(task.training_loss_mask(b)).to(device)
            loss = masked_loss(model(tokens), tokens, mask, train.loss_dtype)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = None
            if held is not None:
                held.zero_grads()
            if train.grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            opt.step()
            if held is not None:
                held.restore()
            watch.record(t, loss, norm)
            if t + 1 in todo or (t + 1) % _CHECK_EVERY == 0:
                watch.check()  # one sync: raises at the first non-finite update
            if t + 1 in todo:
                run.save(t + 1, model, opt, keys)
                saved_now.append(t + 1)
                if on_checkpoint is not None:
                    live = on_checkpoint(t + 1, to_bridge_state(model, keys))
            if bar_state is not None and ((t + 1) % 10 == 0 or t + 1 == last):
                shown = " ".join(f"{k}={v:.3g}" for k, v in live.items())  # live metrics
                bar_state[0].update(
                    bar_state[1],
                    completed=t + 1 - start_step,
                    loss=f"{loss.item():.4f}",
                    live=shown,
                )
    return TrainReport(
        steps_trained=last - start_step + elsewhere,
        resumed_from=start_step if resume is not None else None,
        saved=saved_now,
    )


_CHECK_EVERY = 10  # updates between finiteness checks that are not before a save


class _progress:
    """A rich progress bar showing the training loss (context manager)."""

    def __init__(self, name: str, seed: int, start: int, last: int):
        self.desc = f"train {name} seed {seed}" + (f" (resume @{start})" if start else "")
        self.total = max(last - start, 1)

    def __enter__(self):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[live]}"),
            transient=False,
            console=Console(stderr=True),  # progress on stderr, results on stdout
        )
        self.progress.__enter__()
        task = self.progress.add_task(self.desc, total=self.total, loss="-", live="")
        return self.progress, task

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
