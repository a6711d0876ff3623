"""Adaptive checkpoints: add checkpoints where a transition happens, round after round.

A ``train:`` model with ``refine: {transition: T, resolution: R, budget: B, split: K}`` (``T``
a metric whose record declares how to ``bracket`` a transition, e.g. ``crossing_step``, see
``mispec.metrics.builtin.crossing``) is run in rounds:

1. run the plan (the first round: the model's own ``checkpoints:``);
2. per seed, read the series T reduces at every checkpoint so far and find, with T's
   bracket and the args T's plan node carries, the gap ``(before, at]`` of the transition
   (for ``crossing_step``: where the series first reaches its level);
3. if the gap is wider than ``R`` steps and fewer than ``B`` checkpoints were added to this
   seed so far, cut the gap into ``K`` equal parts and add the ``K - 1`` steps between them
   (fewer when the budget is nearly spent);
4. re-plan with the added steps and run again: training resumes from the nearest saved
   state before each new step (``mispec.models.training``: bit-identical to a straight run),
   and only the new checkpoints are computed. Stop when no seed adds a step.

The added steps join the ``step`` axis of every metric of that model; the last round's plan
is the run's plan. Every decision reads cached cells only, so :func:`replay` repeats the
rounds from the store without running anything: ``mispec plan`` shows the checkpoints
already added and what may still be, and a re-run starts from the last round (no work).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mispec.errors import CacheError
from mispec.planning.nodes import CellNode, ReductionNode, reduction_id
from mispec.sources.trained import TrainedModelSpec
from mispec.spec.schema import Spec
from mispec.spec.train import RefineSpec

if TYPE_CHECKING:
    from mispec.planning.graph import Plan

Extra = dict[tuple[str, int], list[int]]
Replan = Callable[[Mapping[tuple[str, int], Iterable[int]]], "Plan"]


@dataclass
class SeedState:
    """Where refinement of one (model, seed) stands."""

    model: str
    seed: int
    refine: RefineSpec
    added: list[int] = field(default_factory=list)
    bracket: tuple[int, int] | None = None  # (before, at) of the crossing, when known
    rounds: int = 0

    @property
    def resolved(self) -> bool:
        return self.bracket is not None and self.bracket[1] - self.bracket[0] <= (
            self.refine.resolution
        )

    def describe(self) -> str:
        r = self.refine
        head = f"{self.model} seed {self.seed}: refine {r.transition}"
        if self.bracket is None:
            return f"{head}: no crossing found; {len(self.added)} checkpoint(s) added"
        before, at = self.bracket
        why = (
            f"resolution {r.resolution} reached"
            if self.resolved
            else f"budget of {r.budget} spent, resolution {r.resolution} NOT reached"
            if len(self.added) >= r.budget
            else "not finished (run to continue)"
        )
        return (
            f"{head} = {at} (crossed after {before}, +/-{at - before} steps; "
            f"{len(self.added)} checkpoint(s) added in {self.rounds} round(s); {why})"
        )


def refined_models(spec: Spec) -> dict[str, RefineSpec]:
    """Model name -> its ``refine:`` block, for the models that have one."""
    return {
        n: m.refine
        for n, m in spec.models.items()
        if isinstance(m, TrainedModelSpec) and m.refine is not None
    }


def cut(before: int, at: int, parts: int) -> list[int]:
    """The ``parts - 1`` steps that cut ``(before, at)`` into ``parts`` (nearly) equal parts;
    ``parts`` is capped at ``at - before`` (every step between them)."""
    parts = min(parts, at - before)
    return [before + round(i * (at - before) / parts) for i in range(1, parts)]


def _series_values(
    plan: Plan, read: Callable[[str], Any], transition: ReductionNode
) -> tuple[np.ndarray, np.ndarray] | None:
    """The steps and scalar values of the series the ``transition`` reduction reads (its one
    input, a cell per checkpoint), or None when one is not in the store yet."""
    (cells,) = plan.inputs(transition).values()
    steps, values = [], []
    for cell in cells:
        assert isinstance(cell, CellNode)
        value = read(cell.key)
        if value is None:
            return None
        steps.append(cell.step)
        values.append(float(np.asarray(getattr(value, "values", value), dtype=float)))
    return np.asarray(steps, float), np.asarray(values)


def next_steps(
    plan: Plan, read: Callable[[str], Any], states: dict[tuple[str, int], SeedState]
) -> Extra | None:
    """The steps each seed adds in the next round (empty: refinement is done); None when a
    value it needs is not available (``replay`` stops there)."""
    spec = plan.spec
    out: Extra = {}
    for model, refine in refined_models(spec).items():
        mdef = plan.metric_defs[refine.transition]
        for seed in spec.models[model].seeds:
            transition = plan.node(reduction_id(refine.transition, model, seed))
            assert isinstance(transition, ReductionNode)
            found = _series_values(plan, read, transition)
            if found is None:  # not computed yet: nothing is known about this seed
                return None
            state = states.setdefault((model, seed), SeedState(model, seed, refine))
            state.bracket = mdef.bracket_for(found[0], found[1], transition.args)
            if state.bracket is None or state.resolved:
                continue
            left = refine.budget - len(state.added)
            if left <= 0:
                continue
            before, at = state.bracket
            new = cut(before, at, min(refine.split, left + 1))
            if new:
                out[(model, seed)] = new
    return out


@dataclass
class Refinement:
    """The rounds so far: the steps added per (model, seed) and where each seed stands."""

    extra: Extra = field(default_factory=dict)
    states: dict[tuple[str, int], SeedState] = field(default_factory=dict)

    def add(self, new: Extra) -> None:
        for key, steps in new.items():
            self.extra[key] = sorted(set(self.extra.get(key, [])) | set(steps))
            self.states[key].added.extend(steps)
            self.states[key].rounds += 1

    def lines(self) -> list[str]:
        return [s.describe() for _, s in sorted(self.states.items())]


def replay(plan: Plan, read: Callable[[str], Any], replan: Replan) -> tuple[Plan, Refinement]:
    """Repeat the rounds whose decisions the store already holds (``read`` returns None for a
    cell it lacks): the plan of the last round that can be decided without running anything,
    and the rounds so far."""
    done = Refinement()
    if not refined_models(plan.spec):
        return plan, done
    while True:
        new = next_steps(plan, read, done.states)
        if not new:
            return plan, done
        done.add(new)
        plan = replan(done.extra)


def refine(
    plan: Plan,
    done: Refinement,
    read: Callable[[str], Any],
    replan: Replan,
    execute: Callable[[Plan], None],
) -> Plan:
    """Continue the rounds after ``plan`` ran (``done``: the rounds that led to it) until no
    seed adds a step; the last round's plan. ``execute(plan)`` runs a plan, ``read(key)`` reads
    a cell."""
    while refined_models(plan.spec):
        new = next_steps(plan, read, done.states)
        if new is None:
            raise CacheError("refine: a value of the refined series is missing after its run")
        if not new:
            break
        done.add(new)
        plan = replan(done.extra)
        execute(plan)
    return plan
