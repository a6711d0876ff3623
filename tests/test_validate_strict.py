"""What ``validate`` refuses before any compute (issue 14, items 1, 14 and 15): each problem
exits 2 at ``file:line:col`` with a message naming the cause, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mispec.errors import SpecError
from mispec.spec.load import load_spec

from .conftest import TOY_SPEC
from .reliability_helpers import cli

# Every dim of the results and every coordinate the assembly adds (written out, not imported,
# so that the test does not depend on the code it checks).
TAKEN_NAMES = [
    "model", "seed", "step", "layer", "head", "pos", "batch", "neuron", "component", "freq",
    "src_layer", "src_head", "dst_layer", "dst_head", "pc", "mode", "split", "digit",
    "tokens_seen",
]  # fmt: skip


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_a_metric_named_like_a_dim_exits_2_at_its_key_and_writes_nothing(write_spec):
    spec = write_spec(
        TOY_SPEC.replace("  loss: {fn: loss, prompts: rep}", "  layer: {fn: loss, prompts: rep}")
    )
    before = _files(spec.parent)
    res = cli("validate", str(spec), cwd=spec.parent, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"{spec.name}:19:3" in res.stderr, res.stderr
    assert "cannot be named 'layer'" in res.stderr and "e.g. 'loss'" in res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    assert _files(spec.parent) == before


@pytest.mark.parametrize("name", TAKEN_NAMES)
def test_every_dim_and_coordinate_name_is_refused(name, write_spec):
    spec = write_spec(
        TOY_SPEC.replace(
            "  loss: {fn: loss, prompts: rep}", f"  {name}: {{fn: loss, prompts: rep}}"
        )
    )
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    [problem] = [p for p in err.value.problems if p.path == ("metrics", name)]
    assert (problem.line, problem.col) == (19, 3)
    assert f"cannot be named '{name}'" in problem.message
