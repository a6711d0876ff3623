"""Claims on a swept model read the sweep's one result node: a claim names the metric alone
(the points are not several models), selects a point with ``where: {dim: value}`` and is
held to the sweep's dims and the entry's seeds at validation, before anything runs."""

from __future__ import annotations

from pathlib import Path

from mispec.cli.main import main

SPEC = """\
mispec: 1
name: tiny-sweep
models:
  grid:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 4}
      arch: {n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 10
      batch_size: 4
    sweep:
      optimizer.lr: [0.001, 0.01]
      arch.n_layers: [1, 2]
    seeds: [0, 1]
    checkpoints: {steps: [0, 10]}
prompts:
  p: {generator: repeated_tokens, args: {n: 4, vocab: 16, half_len: 4}}
metrics:
  loss: {fn: loss, prompts: p}
  induction: {fn: induction_score, prompts: p}
  imax: {fn: reduce, inputs: {x: induction}, args: {over: [layer, head], how: max}}
  transition: {fn: transition_step, inputs: {series: imax}}
claims:
"""

GOOD = (
    "  a: {text: x, value: {metric: transition, where: {n_layers: 1}}, is: nan}\n"
    "  b: {text: x, value: {metric: loss, step: last, where: {lr: 0.01, seed: 1}}, below: 9}\n"
    '  c: {text: x, compare: [{metric: imax, where: {n_layers: 1}, step: last}, "<",'
    " {metric: imax, where: {n_layers: 2}, step: last}]}\n"
    "  d: {text: x, value: grid/transition, is: finite, points: any}\n"
)


def test_claims_on_a_sweep_name_its_metric_and_select_points(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + GOOD)
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err


def test_a_claim_on_a_sweep_with_an_unknown_dim_or_seed_is_located(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC
        + "  a: {text: x, value: {metric: transition, where: {n_layer: 1}}, is: nan}\n"
        + "  b: {text: x, value: {metric: transition, where: {seed: 5}}, is: nan}\n"
    )
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert (
        "spec.yaml:24:61: claims.a.value.where.n_layer: 'transition' has no dim 'n_layer' "
        "(its dims: ['lr', 'n_layers', 'seed']) (did you mean 'n_layers'?)" in err
    ), err
    assert (
        "spec.yaml:25:58: claims.b.value.where.seed: model 'grid' has no seed 5 (seeds [0, 1])"
        in err
    )
    assert "Traceback" not in err and list(tmp_path.iterdir()) == [spec]


def test_the_shipped_sweep_studies_validate_with_their_claims(capsys):
    specs = Path(__file__).resolve().parents[2] / "specs"
    for name in ("grokking_phase_diagram.yaml", "induction_depth.yaml"):
        assert "claims:" in (specs / name).read_text()
        assert main(["validate", str(specs / name)]) == 0, capsys.readouterr().err
