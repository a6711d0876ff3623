"""Training the seeds of one ``train:`` model together: stacked parameters, one set of kernels.

A toy model leaves a GPU almost idle; S seeds trained in one batched forward and backward pass
do S runs' work in about one run's time. :func:`ensure_trained_together` trains several
seeds of ONE train spec so that each seed's run is the run :func:`~mispec.models.training.
ensure_trained` trains alone, within float rounding (tests: within 1e-6):

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
* one optimizer steps the stacked tensors: Adam, AdamW and SGD (momentum, weight decay) are
  elementwise, and the learning rate depends only on the step, which all seeds share;
  gradient clipping uses each seed's own norm (:func:`clip_per_seed`, ``clip_grad_norm_``'s
  arithmetic per seed) and ``freeze`` holds each seed's own entries;
* each seed's checkpoints (weights, optimizer state sliced to that seed) are written by that
  seed's training folder in exactly the one-at-a-time format, and each seed has its own divergence
  watch: a seed that diverges saves nothing more, the others train on, and its error is
  raised once they are done.

Seeds train together only when they resume from the same step, stop at the same last step,
carry the same optimizer scalars (Adam's step count, hyperparameters) and draw batches of one
shape; any other seed trains alone, one after the other (:func:`groups`). Should the seeds'
batches differ in shape at a later update (a plugin task), each goes on alone from there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mispec.errors import TrainingDivergedError
from mispec.models.divergence import FiniteWatch
from mispec.models.init_weights import Start, State
from mispec.models.runs import Lineage, TrainReport
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


@dataclass(frozen=True)
class SeedJob:
    """One seed to train, with :func:`~mispec.models.training.ensure_trained`'s per-run
    arguments."""

    seed: int
    steps: list[int]
    lineage: Lineage | None = None
    start: Callable[[State], Start] | None = None
    hold: Selection | None = None
    on_checkpoint: Callable[[int, dict[str, torch.Tensor]], dict[str, float]] | None = None


def ensure_trained_together(
    name: str, train: TrainSpec, jobs: list[SeedJob], store_dir: Path, *, progress: bool = True
) -> dict[int, TrainReport]:
    """Train every job's seed until its ``steps`` are saved; the seeds that can train together
    do (:func:`groups`), the others one at a time. A seed that diverges does not stop the
    others: its :class:`~mispec.errors.TrainingDivergedError` is raised at the end."""
    reports: dict[int, TrainReport] = {}
    seats: list[Seat] = []
    for job in jobs:
        seat = seat_for(
            name, train, job.seed, job.steps, store_dir,
            lineage=job.lineage, start=job.start, hold=job.hold, on_checkpoint=job.on_checkpoint,
        )  # fmt: skip
        if seat is None:
            reports[job.seed] = TrainReport()
        else:
            seats.append(seat)
    failed: list[TrainingDivergedError] = []
    for group in groups(seats):
        if len(group) == 1:
            try:
                reports[group[0].seed] = train_alone(group[0], progress=progress)
            except TrainingDivergedError as exc:
                failed.append(exc)
        else:
            done, errors = train_stacked(group, progress=progress)
            reports.update(done)
            failed += errors
    if failed:
        raise failed[0]
    return reports


def groups(seats: list[Seat]) -> list[list[Seat]]:
    """The seats that can train together, in seed order: same resume step, same last step,
    same optimizer scalars and hyperparameters (e.g. a resumed Adam's step count), and
    batches of one shape at the first update (see :func:`_batches`)."""
    by_key: dict[tuple[int, int, str, tuple[int, ...]], list[Seat]] = {}
    for seat in seats:
        shape = seat.task.batch(seat.seed, seat.start_step, seat.run.train.batch_size).tokens.shape
        key = (seat.start_step, seat.last, _scalars(seat.opt.state_dict()), tuple(shape))
        by_key.setdefault(key, []).append(seat)
    return sorted(by_key.values(), key=lambda g: g[0].seed)


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
) -> tuple[dict[int, TrainReport], list[TrainingDivergedError]]:
    """Train seats of one spec that share their start and last step together (see the module
    docstring); their reports, and the divergence errors of the seats that diverged."""
    from torch.func import functional_call, stack_module_state, vmap

    first, n = seats[0], len(seats)
    train, device = first.run.train, first.device
    params, buffers = stack_module_state([s.model for s in seats])  # type: ignore[arg-type]
    opt = make_optimizer(params.values(), train.optimizer)  # type: ignore[arg-type]
    load_stacked_state(opt, [s.opt.state_dict() for s in seats])
    shells = [dict(s.model.named_parameters()) for s in seats]

    template = seedwise(first.model)  # norms and linears seed by seed: mispec.models.seedwise

    def forward(p: dict, b: dict, tokens: torch.Tensor) -> torch.Tensor:
        return functional_call(template, (p, b), (tokens,))

    batched = vmap(forward)
    held = StackedHold(params, first.hold, first.keys) if first.hold else None
    watches = [FiniteWatch(s.run.name, train, s.seed) for s in seats]
    failed: dict[int, TrainingDivergedError] = {}
    switch: int | None = None
    seeds = ",".join(str(s.seed) for s in seats)
    bar = (
        ProgressBar(f"train {first.run.name} seeds {seeds}", first.start_step, first.last)
        if progress
        else nullcontext(None)
    )
    with bar as bar_state:
        for t in range(first.start_step, first.last):
            for group in opt.param_groups:
                group["lr"] = learning_rate(train, t)
            stacked_batch = _batches(seats, t, device)
            if stacked_batch is None:
                switch = t  # the seeds' batches differ in shape from here: train apart
                break
            tokens, masks = stacked_batch
            logits = batched(params, buffers, tokens)
            losses = [
                masked_loss(logits[i], tokens[i], masks[i], train.loss_dtype) for i in range(n)
            ]
            opt.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            norms = None
            if held is not None:
                held.zero_grads()
            if train.grad_clip is not None:
                norms = clip_per_seed(list(params.values()), train.grad_clip)
            opt.step()
            if held is not None:
                held.restore()
            for i, seat in enumerate(seats):
                if i in failed:
                    continue
                watches[i].record(t, losses[i], None if norms is None else norms[i])
                try:  # a seed that diverged saves nothing more; the others train on
                    if t + 1 in seat.todo or (t + 1) % CHECK_EVERY == 0:
                        watches[i].check()
                    if t + 1 in seat.todo:
                        _save(seat, i, shells[i], params, opt, t + 1)
                except TrainingDivergedError as exc:
                    failed[i] = exc
            if len(failed) == n:
                break
            if bar_state is not None and ((t + 1) % 10 == 0 or t + 1 == first.last):
                show(bar_state, t + 1 - first.start_step, losses[0], first.live)
    reports = {s.seed: s.report() for i, s in enumerate(seats) if i not in failed}
    if switch is not None:
        for i, seat in enumerate(seats):
            if i in failed:
                continue
            try:  # each seat goes on alone from its own weights and optimizer state
                watches[i].check()
                _unstack(seat, i, shells[i], params, opt)
                reports[seat.seed] = train_alone(seat, progress=progress, begin=switch)
            except TrainingDivergedError as exc:
                failed[i] = exc
                reports.pop(seat.seed)
    return reports, [failed[i] for i in sorted(failed)]


def _batches(
    seats: list[Seat], t: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Each seat's batch of update ``t`` stacked [seed, batch, pos], with its loss mask; None
    when they differ in shape. (Padding them would be exact in exact arithmetic only: matmuls
    over other widths round otherwise, which Adam amplifies; see :mod:`mispec.models.seedwise`.)"""
    train = seats[0].run.train
    got = [s.task.batch(s.seed, t, train.batch_size) for s in seats]
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
