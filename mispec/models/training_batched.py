"""Training runs of one architecture together: stacked parameters, one set of kernels.

A toy model leaves a GPU almost idle; S runs trained in one batched forward and backward pass
do S runs' work in about one run's time. :func:`ensure_runs_trained_together` trains several
runs — seeds of one ``train:`` model, and models of one architecture with other training
settings (the points of a ``sweep:``: each its own learning rate, weight decay, warmup,
clipping, ``freeze``, data) — so that each run is the run :func:`~mispec.models.training.
ensure_trained` trains alone, within float rounding (tests: within 1e-6; bitwise on CPU):

* each seed's run is set up exactly as alone (:func:`~mispec.models.training.seat_for`: its
  own seeded initialisation, ``init_from``/``init``, resume point with optimizer state, step 0
  saved), then the parameters are stacked along a new leading seed axis
  (``torch.func.stack_module_state``);
* the forward runs under ``torch.func.vmap`` over the seed axis (``functional_call`` of one
  module), each seed on its own batch ``task.batch(seed, t)`` — its own data stream; its
  layer norms and linear layers run seed by seed inside it (:mod:`mispec.models.seedwise`:
  vmap's own rules for them round differently, which Adam amplifies);
* the loss is the sum of the per-seed mean losses (each in ``loss_dtype``), so the gradient
  of each seed's slice is that seed's own gradient;
* seeds of ONE train spec whose optimizer states agree in every scalar share one optimizer
  over the stacked tensors: Adam, AdamW and SGD (momentum, weight decay) are elementwise,
  and the learning rate depends only on the step, which all seeds share; gradient clipping
  uses each seed's own norm (:func:`clip_per_seed`, ``clip_grad_norm_``'s arithmetic per
  seed) and ``freeze`` holds each seed's own entries;
* runs with other training settings (sweep points) each keep their own optimizer on their own
  model: after the stacked backward pass each run's gradient slice becomes its model's
  gradient, and the run's clipping, ``freeze`` and optimizer step run there exactly as alone
  (:func:`_step_each`), its updated weights copied back into the stack;
* each seed's checkpoints (weights, optimizer state sliced to that seed) are written by that
  seed's training folder in exactly the one-at-a-time format, and each seed has its own divergence
  watch: a seed that diverges saves nothing more, the others train on, and its error is
  raised once they are done.

Runs train together only when they compute one forward (:func:`stack_signature`: the same
architecture, dtype and device), resume from the same step, stop at the same last step and
draw batches of one shape; any other run trains alone, one after the other (:func:`groups`).
Should the runs' batches differ in shape at a later update (a plugin task), each goes on alone
from there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from mispec.errors import TrainingDivergedError
from mispec.models.divergence import FiniteWatch
from mispec.models.init_weights import Hold, Start, State
from mispec.models.runs import Lineage, TrainReport, native_config
from mispec.models.seed_stack import StackedHold, clip_per_seed, load_stacked_state, seed_state
from mispec.models.seedwise import seedwise
from mispec.models.training import (
    CHECK_EVERY,
    ProgressBar,
    Seat,
    learning_rate,
    make_optimizer,
    masked_loss,
    seat_for,
    show,
    train_alone,
)
from mispec.models.weight_targets import Selection
from mispec.spec.train import TrainSpec
from mispec.tasks import Task


@dataclass(frozen=True)
class SeedJob:
    """One run to train, with :func:`~mispec.models.training.ensure_trained`'s per-run
    arguments: a seed of ``name``'s ``train`` (for :func:`ensure_trained_together`, which
    fills in its own ``name`` and ``train`` where these are None)."""

    seed: int
    steps: list[int]
    lineage: Lineage | None = None
    start: Callable[[State], Start] | None = None
    hold: Selection | None = None
    on_checkpoint: Callable[[int, dict[str, torch.Tensor]], dict[str, float]] | None = None
    name: str | None = None
    train: TrainSpec | None = None


def ensure_trained_together(
    name: str, train: TrainSpec, jobs: list[SeedJob], store_dir: Path, *, progress: bool = True
) -> dict[int, TrainReport]:
    """:func:`ensure_runs_trained_together` for seeds of ONE train spec; reports by seed."""
    own = [replace(job, name=name, train=train) for job in jobs]
    reports = ensure_runs_trained_together(own, store_dir, progress=progress)
    return {seed: report for (_, seed), report in reports.items()}


def ensure_runs_trained_together(
    jobs: list[SeedJob], store_dir: Path, *, progress: bool = True
) -> dict[tuple[str, int], TrainReport]:
    """Train every job (each with its ``name`` and ``train``) until its ``steps`` are saved;
    the runs that can train together do (:func:`groups`), the others one at a time. A run
    that diverges does not stop the others: its :class:`~mispec.errors.TrainingDivergedError`
    is raised at the end. Reports by (model, seed)."""
    reports: dict[tuple[str, int], TrainReport] = {}
    seats: list[Seat] = []
    for job in jobs:
        if job.name is None or job.train is None:
            raise ValueError(f"ensure_runs_trained_together: job {job} names no model/train")
        seat = seat_for(
            job.name, job.train, job.seed, job.steps, store_dir,
            lineage=job.lineage, start=job.start, hold=job.hold, on_checkpoint=job.on_checkpoint,
        )  # fmt: skip
        if seat is None:
            reports[(job.name, job.seed)] = TrainReport()
        else:
            seats.append(seat)
    failed: list[TrainingDivergedError] = []
    for group in groups(seats):
        if len(group) == 1:
            try:
                reports[_id(group[0])] = train_alone(group[0], progress=progress)
            except TrainingDivergedError as exc:
                failed.append(exc)
        else:
            done, errors = train_stacked(group, progress=progress)
            reports.update(done)
            failed += errors
    if failed:
        raise failed[0]
    return reports


def _id(seat: Seat) -> tuple[str, int]:
    return (seat.run.name, seat.seed)


def stack_signature(train: TrainSpec, task: Task | None = None) -> str:
    """What runs stacked in one forward must share: the model's configuration (but its seed),
    its dtype and its device. Runs whose signatures differ never train together."""
    cfg = {k: v for k, v in native_config(train, 0, task).items() if k != "seed"}
    return json.dumps([cfg, train.dtype, train.device], sort_keys=True, default=str)


def groups(seats: list[Seat]) -> list[list[Seat]]:
    """The seats that can train together, in (model, seed) order: one
    :func:`stack_signature`, same resume step, same last step, and batches of one shape at
    the first update (see :func:`_batches`)."""
    by_key: dict[tuple[str, int, int, tuple[int, ...]], list[Seat]] = {}
    for seat in seats:
        shape = seat.task.batch(seat.seed, seat.start_step, seat.run.train.batch_size).tokens.shape
        sign = stack_signature(seat.run.train, seat.task)
        key = (sign, seat.start_step, seat.last, tuple(shape))
        by_key.setdefault(key, []).append(seat)
    return sorted(by_key.values(), key=lambda g: _id(g[0]))


def shares_optimizer(seats: list[Seat]) -> bool:
    """Whether the seats can step ONE optimizer over the stacked tensors: one train spec (the
    same hyperparameters, learning-rate schedule, clipping and ``freeze``) and optimizer
    states equal in every scalar (e.g. a resumed Adam's step count)."""
    first = seats[0].run.train
    return all(s.run.train == first for s in seats) and (
        len({_scalars(s.opt.state_dict()) for s in seats}) == 1
    )


def _scalars(state: dict[str, Any]) -> str:
    """Everything of an optimizer state that is not one value per weight entry, as text."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in state["param_groups"]]
    per_param = {
        idx: {k: (v.tolist() if v.dim() == 0 else list(v.shape)) if torch.is_tensor(v) else v
              for k, v in s.items()}
        for idx, s in state["state"].items()
    }  # fmt: skip
    return json.dumps([groups, per_param], sort_keys=True, default=str)


def train_stacked(
    seats: list[Seat], *, progress: bool = True
) -> tuple[dict[tuple[str, int], TrainReport], list[TrainingDivergedError]]:
    """Train seats of one :func:`stack_signature` that share their start and last step
    together (see the module docstring); their reports by (model, seed), and the divergence
    errors of the seats that diverged."""
    from torch.func import functional_call, stack_module_state, vmap

    first, n = seats[0], len(seats)
    device = first.device
    params, buffers = stack_module_state([s.model for s in seats])  # type: ignore[arg-type]
    shells = [dict(s.model.named_parameters()) for s in seats]
    shared = shares_optimizer(seats)
    opt: torch.optim.Optimizer | None = None
    held: StackedHold | None = None
    holds: list[Hold | None] = [None] * n
    if shared:  # one optimizer over the stacked tensors
        opt = make_optimizer(params.values(), first.run.train.optimizer)  # type: ignore[arg-type]
        load_stacked_state(opt, [s.opt.state_dict() for s in seats])
        held = StackedHold(params, first.hold, first.keys) if first.hold else None
    else:  # each run steps its own optimizer on its own model (_step_each)
        holds = [Hold(s.model, s.hold, s.keys) if s.hold else None for s in seats]

    template = seedwise(first.model)  # norms and linears seed by seed: mispec.models.seedwise

    def forward(p: dict, b: dict, tokens: torch.Tensor) -> torch.Tensor:
        return functional_call(template, (p, b), (tokens,))

    batched = vmap(forward)
    watches = [FiniteWatch(s.run.name, s.run.train, s.seed) for s in seats]
    failed: dict[int, TrainingDivergedError] = {}
    switch: int | None = None
    bar = (
        ProgressBar(f"train {_label(seats)}", first.start_step, first.last)
        if progress
        else nullcontext(None)
    )
    with bar as bar_state:
        for t in range(first.start_step, first.last):
            stacked_batch = _batches(seats, t, device)
            if stacked_batch is None:
                switch = t  # the runs' batches differ in shape from here: train apart
                break
            tokens, masks = stacked_batch
            logits = batched(params, buffers, tokens)
            losses = [
                masked_loss(logits[i], tokens[i], masks[i], s.run.train.loss_dtype)
                for i, s in enumerate(seats)
            ]
            for p in params.values():
                p.grad = None
            torch.stack(losses).sum().backward()
            norms: torch.Tensor | list[torch.Tensor | None] | None
            if opt is not None:
                norms = _step_shared(first.run.train, t, opt, params, held)
            else:
                norms = _step_each(seats, t, shells, params, holds)
            for i, seat in enumerate(seats):
                if i in failed:
                    continue
                watches[i].record(t, losses[i], None if norms is None else norms[i])
                try:  # a run that diverged saves nothing more; the others train on
                    if t + 1 in seat.todo or (t + 1) % CHECK_EVERY == 0:
                        watches[i].check()
                    if t + 1 in seat.todo:
                        if opt is not None:
                            _save(seat, i, shells[i], params, opt, t + 1)
                        else:
                            seat.save(t + 1)  # its own model and optimizer are current
                except TrainingDivergedError as exc:
                    failed[i] = exc
            if len(failed) == n:
                break
            if bar_state is not None and ((t + 1) % 10 == 0 or t + 1 == first.last):
                show(bar_state, t + 1 - first.start_step, losses[0], first.live)
    reports = {_id(s): s.report() for i, s in enumerate(seats) if i not in failed}
    if switch is not None:
        for i, seat in enumerate(seats):
            if i in failed:
                continue
            try:  # each seat goes on alone from its own weights and optimizer state
                watches[i].check()
                if opt is not None:
                    _unstack(seat, i, shells[i], params, opt)
                reports[_id(seat)] = train_alone(seat, progress=progress, begin=switch)
            except TrainingDivergedError as exc:
                failed[i] = exc
                reports.pop(_id(seat))
    return reports, [failed[i] for i in sorted(failed)]


def _label(seats: list[Seat]) -> str:
    names = sorted({s.run.name for s in seats})
    if len(names) == 1:
        return f"{names[0]} seeds {','.join(str(s.seed) for s in seats)}"
    return f"{len(seats)} runs ({names[0]} ... {names[-1]})"


def _step_shared(
    train: TrainSpec,
    t: int,
    opt: torch.optim.Optimizer,
    params: dict[str, torch.Tensor],
    held: StackedHold | None,
) -> torch.Tensor | None:
    """Update ``t`` of seeds that share one optimizer over the stacked tensors; the [seed]
    gradient norms where ``grad_clip`` clips."""
    for group in opt.param_groups:
        group["lr"] = learning_rate(train, t)
    norms = None
    if held is not None:
        held.zero_grads()
    if train.grad_clip is not None:
        norms = clip_per_seed(list(params.values()), train.grad_clip)
    opt.step()
    if held is not None:
        held.restore()
    return norms


def _step_each(
    seats: list[Seat],
    t: int,
    shells: list[dict[str, torch.nn.Parameter]],
    params: dict[str, torch.Tensor],
    holds: list[Hold | None],
) -> list[torch.Tensor | None]:
    """Update ``t`` of runs with their own optimizers: each run's slice of the stacked
    gradients becomes its own model's gradient, then its ``freeze``, clipping and optimizer
    step run on its model as :func:`~mispec.models.training.train_alone` runs them, and its
    new weights go back into the stack. The gradient norms (None where a run does not clip)."""
    norms: list[torch.Tensor | None] = []
    for i, seat in enumerate(seats):
        train = seat.run.train
        for group in seat.opt.param_groups:
            group["lr"] = learning_rate(train, t)
        for key, p in shells[i].items():
            grad = params[key].grad
            p.grad = None if grad is None else grad[i]
        hold = holds[i]
        if hold is not None:
            hold.zero_grads()
        norm = None
        if train.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(seat.model.parameters(), train.grad_clip)
        seat.opt.step()
        if hold is not None:
            hold.restore()
        with torch.no_grad():
            for key, p in shells[i].items():
                params[key][i].copy_(p)
        norms.append(norm)
    return norms


def _batches(
    seats: list[Seat], t: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Each seat's batch of update ``t`` stacked [seed, batch, pos], with its loss mask; None
    when they differ in shape. (Padding them would be exact in exact arithmetic only: matmuls
    over other widths round otherwise, which Adam amplifies; see :mod:`mispec.models.seedwise`.)"""
    got = [s.task.batch(s.seed, t, s.run.train.batch_size) for s in seats]
    if len({b.tokens.shape for b in got}) > 1:
        return None
    tokens = torch.stack([torch.from_numpy(b.tokens) for b in got])
    mask = torch.stack(
        [torch.from_numpy(s.task.training_loss_mask(b)) for s, b in zip(seats, got, strict=True)]
    )
    return tokens.to(device), mask.to(device)


@torch.no_grad()
def _unstack(
    seat: Seat,
    i: int,
    shell: dict[str, torch.nn.Parameter],
    params: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
) -> None:
    """Seed ``i``'s weights and optimizer state back into its own model and optimizer."""
    for key, p in shell.items():
        p.copy_(params[key][i])
    seat.opt.load_state_dict(seed_state(opt, i))


@torch.no_grad()
def _save(
    seat: Seat,
    i: int,
    shell: dict[str, torch.nn.Parameter],
    params: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    step: int,
) -> None:
    """Save seed ``i``'s ``step``: its slice of the weights copied into its own model, and of
    the optimizer state, written by its training run as one-at-a-time training writes them."""
    for key, p in shell.items():
        p.copy_(params[key][i])
    seat.save(step, seed_state(opt, i))
