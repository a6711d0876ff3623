"""Claims checked on results built by hand: each kind of check passes on results built to
satisfy it and fails on results built to contradict it; NaN and missing labels are
unevaluable, never a pass; quantifiers follow three-valued logic; ``expect: fail``."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from mispec.results.claim_logic import quantify
from mispec.results.claims import check_claim
from mispec.spec.claims import ClaimSpec
from mispec.spec.schema import Spec


def _tree(**models: xr.Dataset) -> xr.DataTree:
    return xr.DataTree.from_dict({f"/{name}": ds for name, ds in models.items()})


def _model(transition=(500.0, 600.0), prev=(200.0, 300.0), loss_last=(0.5, 0.6), heads=None):
    """Two seeds, three steps, 2 layers × 2 heads."""
    seeds, steps = [0, 1], [0, 100, 1000]
    if heads is None:  # strongest head: layer 1 head 0 in both seeds
        heads = np.zeros((2, 3, 2, 2))
        heads[:, :, 1, 0] = 0.9
        heads[:, :, 0, 1] = 0.3
    loss = np.array([[4.0, 2.0, loss_last[0]], [4.1, 2.1, loss_last[1]]])
    return xr.Dataset(
        {
            "transition": ("seed", np.array(transition, dtype=float)),
            "prev_transition": ("seed", np.array(prev, dtype=float)),
            "loss": (("seed", "step"), loss),
            "induction": (("seed", "step", "layer", "head"), heads),
        },
        coords={"seed": seeds, "step": steps, "layer": [0, 1], "head": [0, 1]},
    )


def _verdict(tree: xr.DataTree, claim: dict) -> tuple[str, str]:
    v = check_claim(tree, "c", ClaimSpec.model_validate({"text": "the claim", **claim}))
    return v.status, v.measured


def test_value_in_range_passes_and_fails():
    claim = {"value": "transition", "between": [300, 900]}
    assert _verdict(_tree(m=_model()), claim) == ("pass", "seed 0: 500, seed 1: 600")
    assert _verdict(_tree(m=_model(transition=(500.0, 950.0))), claim)[0] == "fail"
    # one seed in range is enough for `seeds: any`, and half of them for `seeds: 0.5`
    for seeds in ("any", 0.5):
        got = _verdict(_tree(m=_model(transition=(500.0, 950.0))), {**claim, "seeds": seeds})
        assert got[0] == "pass"


def test_value_at_a_step_and_over_every_step():
    at_last = {"value": {"metric": "loss", "step": "last"}, "below": 1.0}
    assert _verdict(_tree(m=_model()), at_last) == ("pass", "seed 0: 0.5, seed 1: 0.6")
    assert _verdict(_tree(m=_model(loss_last=(0.5, 1.5))), at_last)[0] == "fail"
    at_step = {"value": {"metric": "loss", "step": 100}, "between": [1.9, 2.2]}
    assert _verdict(_tree(m=_model()), at_step)[0] == "pass"
    every = {"value": "loss", "below": 3.0}  # step 0 has 4.0: not below 3 at every step
    assert _verdict(_tree(m=_model()), every)[0] == "fail"
    assert _verdict(_tree(m=_model()), {**every, "steps": "any"})[0] == "pass"
    assert _verdict(_tree(m=_model()), {**every, "steps": 0.66})[0] == "pass"  # 2 of 3
    assert _verdict(_tree(m=_model()), {**every, "steps": 0.7})[0] == "fail"  # 3 of 3 needed


def test_nan_is_unevaluable_never_a_pass():
    claim = {"value": "transition", "between": [300, 900]}
    status, measured = _verdict(_tree(m=_model(transition=(500.0, np.nan))), claim)
    assert status == "unevaluable" and measured == "seed 0: 500, seed 1: NaN"
    # `any` holds on seed 0 whatever seed 1 is; `every` cannot say
    assert _verdict(_tree(m=_model(transition=(500.0, np.nan))), {**claim, "seeds": "any"})[0] == (
        "pass"
    )
    # a failing seed decides `every` even when another is unknown
    assert _verdict(_tree(m=_model(transition=(950.0, np.nan))), claim)[0] == "fail"


def test_does_not_happen_is_nan():
    claim = {"value": "transition", "is": "nan"}
    assert _verdict(_tree(m=_model(transition=(np.nan, np.nan))), claim)[0] == "pass"
    assert _verdict(_tree(m=_model(transition=(np.nan, 400.0))), claim)[0] == "fail"
    happens = {"value": "transition", "is": "finite"}
    assert _verdict(_tree(m=_model(transition=(np.nan, 400.0))), happens)[0] == "fail"


def test_order_of_events_per_seed():
    claim = {"before": ["prev_transition", "transition"]}
    assert _verdict(_tree(m=_model()), claim)[0] == "pass"
    # seed 1's previous-token heads form after its induction heads: the order fails
    assert _verdict(_tree(m=_model(prev=(200.0, 700.0))), claim)[0] == "fail"
    assert _verdict(_tree(m=_model(prev=(200.0, np.nan))), claim)[0] == "unevaluable"


def test_compare_between_models_with_margin():
    tree = _tree(ticket=_model(transition=(300.0, 350.0)), fresh=_model())
    claim = {"compare": ["ticket/transition", "<", "fresh/transition"]}
    status, measured = _verdict(tree, claim)
    assert status == "pass"
    assert (
        measured
        == "ticket/transition seed 0: 300, seed 1: 350; fresh/transition seed 0: 500, seed 1: 600"
    )
    assert _verdict(tree, {**claim, "margin": 200})[0] == "fail"  # 350 < 600 - 200 is false
    assert _verdict(tree, {**claim, "margin": 199})[0] == "pass"
    flipped = {"compare": ["ticket/transition", ">", "fresh/transition"]}
    assert _verdict(tree, flipped)[0] == "fail"
    # a seed one side lacks is unknown, not dropped
    partial = _tree(ticket=_model(transition=(300.0, 350.0)).isel(seed=[0]), fresh=_model())
    assert _verdict(partial, claim)[0] == "unevaluable"


def test_argmax_location():
    claim = {"argmax": {"metric": "induction", "step": "last"}, "over": ["layer", "head"]}
    status, measured = _verdict(_tree(m=_model()), {**claim, "at": {"layer": 1}})
    assert (status, measured) == ("pass", "seed 0: layer 1 head 0, seed 1: layer 1 head 0")
    assert _verdict(_tree(m=_model()), {**claim, "at": {"layer": 0}})[0] == "fail"
    assert _verdict(_tree(m=_model()), {**claim, "at": {"layer": 1, "head": 1}})[0] == "fail"
    heads = np.zeros((2, 3, 2, 2))
    heads[1, :, 0, 0] = 0.9  # seed 1's strongest head is in layer 0
    heads[0, :, 1, 1] = 0.9
    assert _verdict(_tree(m=_model(heads=heads)), {**claim, "at": {"layer": 1}})[0] == "fail"
    assert (
        _verdict(
            _tree(m=_model(heads=np.full((2, 3, 2, 2), np.nan))), {**claim, "at": {"layer": 1}}
        )[0]
        == "unevaluable"
    )


def test_count_of_nonzero_entries():
    counts = np.array([[0, 3, 0, 1, 5, 0], [2, 0, 0, 1, 0, 0]], dtype=float)
    tree = _tree(
        m=xr.Dataset(
            {"freqs": (("seed", "freq"), counts)}, coords={"seed": [0, 1], "freq": np.arange(1, 7)}
        )
    )
    claim = {"count": "freqs", "over": ["freq"], "between": [2, 3]}
    assert _verdict(tree, claim) == ("pass", "seed 0: 3, seed 1: 2")
    assert _verdict(tree, {**claim, "between": [3, 6]})[0] == "fail"


def test_select_by_label_on_any_dim_and_quantify_points():
    """A sweep adds dims the claim does not know in advance: select a point by label, or
    quantify over every point like over seeds."""
    wd = xr.Dataset(
        {"transition": (("seed", "weight_decay"), np.array([[500.0, np.nan], [600.0, np.nan]]))},
        coords={"seed": [0, 1], "weight_decay": [1.0, 0.0]},
    )
    tree = _tree(m=wd)
    with_wd = {"value": {"metric": "transition", "where": {"weight_decay": 1.0}}, "below": 900}
    assert _verdict(tree, with_wd)[0] == "pass"
    without = {"value": {"metric": "transition", "where": {"weight_decay": 0.0}}, "is": "nan"}
    assert _verdict(tree, without)[0] == "pass"
    assert _verdict(tree, {"value": "transition", "below": 900})[0] == "unevaluable"
    assert _verdict(tree, {"value": "transition", "below": 900, "points": "any"})[0] == "pass"
    missing = {"value": {"metric": "transition", "where": {"weight_decay": 0.5}}, "below": 900}
    status, measured = _verdict(tree, missing)
    assert status == "unevaluable" and "weight_decay 0.5" in measured


def test_missing_results_are_unevaluable():
    tree = _tree(m=_model())
    assert _verdict(tree, {"value": "absent", "below": 1})[0] == "unevaluable"
    assert _verdict(tree, {"value": "other/loss", "below": 1})[0] == "unevaluable"
    assert _verdict(tree, {"value": {"metric": "loss", "step": 55}, "below": 9})[0] == "unevaluable"


def test_expected_failure_is_reported_as_such():
    claim = {"value": "transition", "below": 100, "expect": "fail", "reason": "a toy"}
    v = check_claim(_tree(m=_model()), "c", ClaimSpec.model_validate({"text": "t", **claim}))
    assert v.status == "expected failure" and not v.failed and "(a toy)" in v.line()
    v = check_claim(
        _tree(m=_model()),
        "c",
        ClaimSpec.model_validate({"text": "t", **claim, "below": 1000}),
    )
    assert v.status == "unexpected pass" and v.failed


def test_an_expected_failure_that_cannot_be_evaluated_is_still_the_expected_failure():
    """`expect: fail` says the claim is not established here: unknown (a NaN event step, as
    when a point never groks in the budget) is that expectation, shown with its NaN; the same
    claim without `expect: fail` stays unevaluable, never a pass."""
    tree = _tree(m=_model(transition=(500.0, float("nan"))))
    claim = {"before": ["prev_transition", "transition"]}
    assert _verdict(tree, claim) == (
        "unevaluable",
        "prev_transition seed 0: 200, seed 1: 300; transition seed 0: 500, seed 1: NaN",
    )
    marked = {**claim, "expect": "fail", "reason": "seed 1 never forms one"}
    v = check_claim(tree, "c", ClaimSpec.model_validate({"text": "t", **marked}))
    assert v.status == "expected failure" and not v.failed
    assert "seed 1: NaN" in v.line() and "(seed 1 never forms one)" in v.line()


def test_quantify_is_kleene():
    t = xr.DataArray([[1.0, np.nan], [0.0, np.nan], [1.0, 1.0]], dims=("seed", "x"))
    assert list(quantify(t, ["x"], "every").values.astype(str)) == ["nan", "0.0", "1.0"]
    assert list(quantify(t, ["x"], "any").values.astype(str)) == ["1.0", "nan", "1.0"]


@pytest.mark.parametrize(
    "claim, message",
    [
        ({"value": "x"}, "needs a range"),
        ({"value": "x", "below": 1, "before": ["a", "b"]}, "exactly one check"),
        ({"argmax": "x", "over": ["layer"]}, "at: is what an argmax claim needs"),
        ({"count": "x", "over": ["f"]}, "needs a range"),
        ({"value": "x", "below": 1, "expect": "fail"}, "needs a reason"),
        ({"value": "x", "between": [3, 1]}, "is empty"),
        ({"value": "x", "below": 1, "seeds": 1.5}, "less than or equal to 1"),
    ],
)
def test_malformed_claims_are_refused(claim, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        ClaimSpec.model_validate({"text": "t", **claim})


def test_a_spec_without_claims_dumps_as_before():
    data = {
        "mispec": 1,
        "name": "s",
        "models": {"m": {"path": "x", "checkpoints": "all"}},
        "metrics": {"loss": {"fn": "loss"}},
    }
    import mispec.sources  # noqa: F401 (entry classes)

    assert "claims" not in Spec.model_validate(data).model_dump(mode="json")
    with_claims = {**data, "claims": {"c": {"text": "t", "value": "loss", "below": 1}}}
    assert "claims" in Spec.model_validate(with_claims).model_dump(mode="json")
