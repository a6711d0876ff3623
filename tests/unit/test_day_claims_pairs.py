"""Claims on a ``pairs: seeds`` result (dims ``seed``, ``seed_b``): only ``seed < seed_b`` is
computed, the rest NaN by construction. A claim over every pair is judged on the computed
pairs alone — pass, fail or unevaluable on them — and shows them as ``pair 0-1: ...``."""

from __future__ import annotations

import numpy as np
import xarray as xr

from mispec.results.claims import check_claim
from mispec.spec.claims import ClaimSpec


def _kl(pairs: dict[tuple[int, int], float]) -> xr.DataTree:
    """Three seeds, two steps: KL between seeds as assemble_pairs lays it out (NaN on the
    diagonal and below it); ``pairs`` gives each computed pair's value at the last step."""
    values = np.full((3, 3, 2), np.nan)
    for (a, b), x in pairs.items():
        assert a < b
        values[a, b] = [2.0, x]  # step 0: far apart
    ds = xr.Dataset(
        {"kl": (("seed", "seed_b", "step"), values)},
        coords={"seed": [0, 1, 2], "seed_b": [0, 1, 2], "step": [0, 1000]},
    )
    return xr.DataTree.from_dict({"/toy": ds})


def _verdict(tree: xr.DataTree, claim: dict) -> tuple[str, str]:
    v = check_claim(tree, "c", ClaimSpec.model_validate({"text": "the claim", **claim}))
    return v.status, v.measured


CLOSE = {"value": {"metric": "kl", "step": "last"}, "below": 0.4}


def test_every_pair_below_a_bound_is_judged_on_the_computed_pairs():
    tree = _kl({(0, 1): 0.25, (0, 2): 0.22, (1, 2): 0.30})
    assert _verdict(tree, CLOSE) == ("pass", "pair 0-1: 0.25, pair 0-2: 0.22, pair 1-2: 0.3")
    # one pair above the bound fails the claim (every pair, the default)...
    far = _kl({(0, 1): 0.25, (0, 2): 0.52, (1, 2): 0.30})
    assert _verdict(far, CLOSE)[0] == "fail"
    # ... and `seeds: any` / a fraction over the pairs passes on the others
    assert _verdict(far, {**CLOSE, "seeds": "any"})[0] == "pass"
    assert _verdict(far, {**CLOSE, "seeds": 0.6})[0] == "pass"  # 2 of 3
    assert _verdict(far, {**CLOSE, "seeds": 0.9})[0] == "fail"


def test_a_computed_pair_that_is_nan_is_unevaluable_never_a_pass():
    tree = _kl({(0, 1): 0.25, (0, 2): float("nan"), (1, 2): 0.30})
    status, shown = _verdict(tree, CLOSE)
    assert status == "unevaluable" and "pair 0-2: NaN" in shown


def test_one_side_chosen_keeps_that_seeds_computed_pairs():
    tree = _kl({(0, 1): 0.25, (0, 2): 0.52, (1, 2): 0.30})
    seed0 = {"value": {"metric": "kl", "step": "last", "where": {"seed": 0}}, "below": 0.4}
    assert _verdict(tree, seed0) == ("fail", "seed_b 1: 0.25, seed_b 2: 0.52")
    with_2 = {"value": {"metric": "kl", "step": "last", "where": {"seed_b": 2}}, "below": 0.6}
    assert _verdict(tree, with_2) == ("pass", "seed 0: 0.52, seed 1: 0.3")
    one = {"value": {"metric": "kl", "step": "last", "where": {"seed": 1, "seed_b": 2}}}
    assert _verdict(tree, {**one, "below": 0.4}) == ("pass", "0.3")


def test_a_comparison_over_pairs_follows_them_step_by_step():
    """KL falls over training in every pair: KL at step 0 above KL at the last step."""
    tree = _kl({(0, 1): 0.25, (0, 2): 0.22, (1, 2): 0.30})
    falls = {
        "compare": [
            {"metric": "kl", "step": 0},
            ">",
            {"metric": "kl", "step": "last"},
        ],
        "margin": 1.0,
    }
    assert _verdict(tree, falls)[0] == "pass"
    assert _verdict(tree, {**falls, "margin": 1.75})[0] == "fail"  # 2.0 − 0.30 < 1.75
