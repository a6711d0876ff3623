"""A claim naming an unknown metric, model, dim or seed, a step on a per-seed value, an
argmax over a dim the metric lacks, or comparing values of different units, is an error at
its file:line:col (exit 2), found before anything runs."""

from __future__ import annotations

from mispec.cli.main import main

SPEC = """\
mispec: 1
name: tiny
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 4}
      arch: {n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 10
      batch_size: 4
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

BAD = {
    "a": (
        "{text: x, value: los, below: 1}",
        "21:23: claims.a.value: unknown metric 'los' (did you mean 'loss'?)",
    ),
    "b": (
        "{text: x, value: {metric: loss, where: {seed: 7}}, below: 1}",
        "22:52: claims.b.value.where.seed: model 'toy' has no seed 7 (seeds [0, 1])",
    ),
    "c": (
        "{text: x, value: {metric: loss, where: {layr: 0}}, below: 1}",
        "23:52: claims.c.value.where.layr: 'loss' has no dim 'layr'",
    ),
    "d": (
        "{text: x, value: {metric: transition, step: last}, below: 1}",
        "24:23: claims.d.value: 'transition' has no step dim",
    ),
    "e": (
        "{text: x, argmax: induction, over: [layer, heads], at: {layer: 0}}",
        "25:41: claims.e.over: 'induction' has no dim 'heads' left to run over",
    ),
    "f": (
        "{text: x, before: [transition, loss]}",
        "26:24: claims.f.before: before compares event steps",
    ),
    "g": (
        '{text: x, compare: [transition, "<", loss]}',
        "27:25: claims.g.compare: cannot compare transition (step) with loss (nats)",
    ),
    "h": (
        "{text: x, value: other/loss, below: 1}",
        "28:23: claims.h.value: no model 'other' for 'loss'",
    ),
    "i": (
        "{text: x, value: loss, between: [2, 1]}",
        "29:6: claims.i: between: [2.0, 1.0] is empty",
    ),
}


def test_each_bad_claim_is_located(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "".join(f"  {n}: {c}\n" for n, (c, _) in BAD.items() if n != "i"))
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    for name, (_, message) in BAD.items():
        if name == "i":  # a schema error: reported alone (the schema runs before the checks)
            continue
        assert f"spec.yaml:{message}" in err, (name, err)
    assert "Traceback" not in err and list(tmp_path.iterdir()) == [spec]  # nothing written
    only_schema = SPEC + f"  i: {BAD['i'][0]}\n"
    spec.write_text(only_schema)
    assert main(["validate", str(spec)]) == 2
    assert "spec.yaml:21:6: claims.i: between: [2.0, 1.0] is empty" in capsys.readouterr().err


def test_good_claims_validate(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC
        + "  ok: {text: x, value: {metric: loss, step: last, where: {seed: 1}}, below: 9}\n"
        + "  am: {text: x, argmax: {metric: induction, step: last}, over: [layer, head], at: {layer: 0}}\n"
        + '  cmp: {text: x, compare: [{metric: loss, step: last}, "<", {metric: loss, step: first}]}\n'
    )
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err
