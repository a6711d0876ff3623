"""Pairs: which second sides a comparison metric's cell at one checkpoint reads.

A comparison metric (``@metric(other_side=...)``) declares ``pairs:`` in the spec; each
first-side checkpoint (model, seed, step) then computes one cell per second side, whose
other-side inputs read that side's cells (built on the input references of
``mispec.planning.cells``: the cell's key carries both sides' input keys, and the work graph
makes its group wait for the second side's group). Pure: no model, no file.

* ``seeds`` (``all`` or a list): every unordered pair ``a < b`` of the seeds, at the same step
  (where both runs have it); the first side is the smaller seed.
* ``models: [A, B]``: model A's checkpoint against model B's at the same seed and step (the
  seeds and steps both have).
* ``steps: last | first | N``: each checkpoint against that step of the same run.
* ``models: [A, B]`` with ``steps``: each checkpoint of A against that step of B at the
  same seed (a fine-tuned model at every step against its parent's last checkpoint).
"""

from __future__ import annotations

from mispec.errors import PlanError
from mispec.planning.nodes import series_label
from mispec.planning.resolve import Resolution
from mispec.spec.metrics import PairSpec

Where = tuple[str, int, int]  # (model, seed, step)


def pair_seeds(pairs: PairSpec, seeds: list[int]) -> list[int]:
    """The seeds of a model that ``pairs.seeds`` compares, sorted."""
    return sorted(seeds if pairs.seeds == "all" else set(pairs.seeds or ()) & set(seeds))


def partners(pairs: PairSpec, resolution: Resolution, here: Where) -> list[Where]:
    """The second sides of the comparison cells that checkpoint ``here`` computes."""
    model, seed, step = here
    series = resolution.series
    if pairs.seeds is not None:
        seeds = pair_seeds(pairs, [s for m, s in series if m == model])
        if seed not in seeds:
            return []
        return [(model, b, step) for b in seeds if b > seed and step in series[(model, b)].steps]
    if pairs.models is not None:
        a, b = pairs.models
        other = series.get((b, seed))
        if model != a or other is None:
            return []
        if pairs.steps is not None:  # one step of model B for every step of A
            return [(b, seed, _fixed_step(pairs.steps, other.steps, b, seed))]
        return [(b, seed, step)] if step in other.steps else []
    run = series[(model, seed)]
    return [(model, seed, _fixed_step(pairs.steps, run.steps, model, seed))]


def _fixed_step(which: str | int | None, steps: tuple[int, ...], model: str, seed: int) -> int:
    """``last``, ``first`` or a step of a run (PlanError when it is no checkpoint)."""
    if which == "last":
        return steps[-1]
    if which == "first":
        return steps[0]
    fixed = int(which or 0)
    if fixed not in steps:
        raise PlanError(
            f"pairs: step {fixed} is not a checkpoint of {series_label(model, seed)} "
            f"(its steps run from {steps[0]} to {steps[-1]}, {len(steps)} in all)"
        )
    return fixed
