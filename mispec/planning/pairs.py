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
"""

from __future__ import annotations

from mispec.errors import PlanError
from mispec.planning.nodes import series_label
from mispec.planning.resolve import Resolution
from mispec.spec.schema import PairSpec

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
        if model != a or other is None or step not in other.steps:
            return []
        return [(b, seed, step)]
    run = series[(model, seed)]
    if pairs.steps == "last":
        return [(model, seed, run.steps[-1])]
    if pairs.steps == "first":
        return [(model, seed, run.steps[0])]
    fixed = int(pairs.steps or 0)
    if fixed not in run.steps:
        raise PlanError(
            f"pairs: step {fixed} is not a checkpoint of {series_label(model, seed)} "
            f"(its steps run from {run.steps[0]} to {run.steps[-1]}, {len(run.steps)} in all)"
        )
    return [(model, seed, fixed)]
