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

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mispec.errors import UserError
from mispec.models.divergence import FiniteWatch
from mispec.models.init_weights import Hold, Start, State, check_compatible
from mispec.models.native import KeyMap, key_map, load_bridge_state, plain_model, to_bridge_state
from mispec.models.runs import Lineage, TrainReport, native_config, saved_steps
from mispec.models.training_run import TrainingRun, resume_point, verified
from mispec.models.weight_targets import Selection
from mispec.spec.train import OptimizerSpec, TrainSpec
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
    """LR of update ``update`` (0-based): linear warmup over ``warmup_steps`` (update ``u``
    at ``lr * (u + warmup_offset) / warmup_steps``), then flat."""
    lr = train.optimizer.lr
    if train.warmup_steps and update < train.warmup_steps:
        return lr * (update + train.warmup_offset) / train.warmup_steps
    return lr


def masked_loss(
    logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor, dtype: str | None = None
) -> torch.Tensor:
    """Mean next-token cross-entropy over the predictions selected by ``mask`` [b, n-1],
    computed in ``dtype`` (``float64``: the log-softmax of a confident prediction no longer
    rounds to multiples of float32's 1.2e-7, which makes loss spikes once the loss is tiny)."""
    pred = logits[:, :-1][mask].to(torch.float64 if dtype == "float64" else torch.float32)
    return F.cross_entropy(pred, tokens[:, 1:][mask])


@dataclass
class Seat:
    """One seed's run, set up to train: its model (at ``start_step``, weights and optimizer
    state restored), what to save, and how. Built by :func:`seat_for` for one-at-a-time
    training and for training seeds together (:mod:`mispec.models.training_batched`)."""

    run: TrainingRun
    task: Task
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    keys: KeyMap
    device: torch.device
    todo: set[int]  # the steps to save
    start_step: int
    last: int  # the last step to save
    resumed: bool
    elsewhere: int  # steps other runs trained to provide step 0 (init_from, init copies)
    hold: Selection | None
    on_checkpoint: Callable[[int, dict[str, torch.Tensor]], dict[str, float]] | None
    saved: list[int] = field(default_factory=list)
    live: dict[str, float] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.run.seed

    def save(self, step: int, opt_state: dict[str, Any] | None = None) -> None:
        """Save ``step`` from :attr:`model` and the optimizer state (default: :attr:`opt`'s),
        and hand its weights to ``on_checkpoint``."""
        state = self.opt.state_dict() if opt_state is None else opt_state
        self.run.save(step, self.model, state, self.keys)
        self.saved.append(step)
        if self.on_checkpoint is not None:
            self.live = self.on_checkpoint(step, to_bridge_state(self.model, self.keys))

    def report(self) -> TrainReport:
        return TrainReport(
            steps_trained=self.last - self.start_step + self.elsewhere,
            resumed_from=self.start_step if self.resumed else None,
            saved=self.saved,
        )


def seat_for(
    name: str,
    train: TrainSpec,
    seed: int,
    steps: list[int],
    store_dir: Path,
    *,
    lineage: Lineage | None = None,
    start: Callable[[State], Start] | None = None,
    hold: Selection | None = None,
    on_checkpoint: Callable[[int, dict[str, torch.Tensor]], dict[str, float]] | None = None,
) -> Seat | None:
    """The run of ``seed`` set up at its resume point (step 0 saved when it is missing), or
    ``None`` when every step in ``steps`` is saved already (arguments: :func:`ensure_trained`)."""
    wanted = sorted({int(s) for s in steps})
    if wanted and wanted[0] < 0:
        raise UserError(f"model '{name}': negative training step {wanted[0]}")
    run = TrainingRun(name, train, seed, store_dir, lineage)
    saved = saved_steps(train, seed, store_dir, lineage)
    valid = verified(run, [s for s in wanted if s in saved])
    missing = [s for s in wanted if s not in valid]
    if not missing:
        return None
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
    resume = resume_point(run, saved_steps(train, seed, store_dir, lineage), missing[0])
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
    seat = Seat(
        run, task, model, opt, keys, device, set(missing), start_step, missing[-1],
        resume is not None, elsewhere, hold, on_checkpoint,
    )  # fmt: skip
    if start_step in seat.todo:  # only step 0 can be missing here
        seat.save(start_step)
    return seat


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
    metrics, ``mispec.execute.work.live``)."""
    seat = seat_for(
        name, train, seed, steps, store_dir,
        lineage=lineage, start=start, hold=hold, on_checkpoint=on_checkpoint,
    )  # fmt: skip
    return TrainReport() if seat is None else train_alone(seat, progress=progress)


def train_alone(seat: Seat, *, progress: bool = True, begin: int | None = None) -> TrainReport:
    """Train one seat from its ``start_step`` (or from ``begin``, where its model and optimizer
    already are) to its ``last`` step, saving its ``todo``."""
    run, model, opt, keys, task = seat.run, seat.model, seat.opt, seat.keys, seat.task
    train = run.train
    first = seat.start_step if begin is None else begin
    held = Hold(model, seat.hold, keys) if seat.hold else None
    watch = FiniteWatch(run.name, train, seat.seed)
    bar = (
        ProgressBar(f"train {run.name} seed {seat.seed}", first, seat.last)
        if progress
        else nullcontext(None)
    )
    with bar as bar_state:
        for t in range(first, seat.last):
            for group in opt.param_groups:
                group["lr"] = learning_rate(train, t)
            b = task.batch(seat.seed, t, train.batch_size)
            tokens = torch.from_numpy(b.tokens).to(seat.device)
            mask = torch.from_numpy(task.training_loss_mask(b)).to(seat.device)
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
            if t + 1 in seat.todo or (t + 1) % CHECK_EVERY == 0:
                watch.check()  # one sync: raises at the first non-finite update
            if t + 1 in seat.todo:
                seat.save(t + 1)
            if bar_state is not None and ((t + 1) % 10 == 0 or t + 1 == seat.last):
                show(bar_state, t + 1 - first, loss, seat.live)
    return seat.report()


def show(bar_state: Any, completed: int, loss: torch.Tensor, live: dict[str, float]) -> None:
    """Update the progress bar: updates done, the loss, the live metrics' values."""
    bar_state.show(completed, loss.item(), live)


CHECK_EVERY = 10  # updates between finiteness checks that are not before a save


class ProgressBar:
    """A training loop's bar on the run's display (:mod:`mispec.runtime.display`: the one
    open, else one of its own), showing the loss and the live metrics; removed when the loop
    ends, so no finished training line stays frozen above the run's bars (context manager)."""

    def __init__(self, desc: str, start: int, last: int):
        self.desc = desc + (f" (resume @{start})" if start else "")
        self.total = max(last - start, 1)
        self.shown_live = ""

    def __enter__(self) -> ProgressBar:
        from mispec.runtime.display import run_display

        self._display = run_display(True)
        self.display = self._display.__enter__()
        self.task = self.display.add(self.desc, self.total, status="loss -", kind="training")
        return self

    def show(self, completed: int, loss: float, live: dict[str, float]) -> None:
        shown = " ".join(f"{k}={v:.3g}" for k, v in live.items())
        new_value, self.shown_live = shown != self.shown_live, shown
        status = f"loss {loss:.4f}" + (f" {shown}" if shown else "")
        self.display.update(self.task, completed=completed, status=status, flush=new_value)

    def __exit__(self, *exc: Any) -> None:
        self.display.remove(self.task)
        self._display.__exit__(*exc)
