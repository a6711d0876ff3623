"""Bit-identical results whatever runs them: the local executor in one process, its lanes
(worker processes), Dask (``dask-local``), and a rebuild from the cache — every variable,
coordinate and dtype, and the provenance checksums (the README's promise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

try:
    from tests.helpers.executor_identity import assert_bitwise_equal, run_everywhere
except ImportError:
    from helpers.executor_identity import assert_bitwise_equal, run_everywhere

SPEC = """\
mispec: 1
name: identity
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 4
      batch_size: 8
    seeds: [0, 1]
    checkpoints: {steps: [0, 2, 4]}
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 4, vocab: 16, half_len: 6}
    seed: 1
metrics:
  loss: {fn: loss, prompts: rep}
  induction: {fn: induction_score, prompts: rep}
  logprobs: {fn: next_token_logprobs, prompts: rep, cache: skip}
  residual: {fn: activations, prompts: rep, cache: skip}
  patterns: {fn: attention_patterns, prompts: rep, cache: skip}
  params: {fn: parameters}
  transition: {fn: transition_step, inputs: {series: induction}}
  kl: {fn: kl_divergence, inputs: {p: logprobs, q: logprobs}, pairs: seeds}
  top1: {fn: top1_agreement, inputs: {p: logprobs, q: logprobs}, pairs: seeds}
  cka: {fn: representation_similarity, inputs: {x: residual, y: residual}, pairs: seeds}
  heads: {fn: head_matching, inputs: {x: patterns, y: patterns}, pairs: seeds}
  distance: {fn: weight_distance, inputs: {a: params, b: params}, pairs: seeds}
  to_final: {fn: weight_distance, inputs: {a: params, b: params}, pairs: {steps: last}}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The spec run from scratch by each executor, and rebuilt from the serial run's cache."""
    root = tmp_path_factory.mktemp("identity")
    (root / ".mispec").mkdir()
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    return run_everywhere(root, spec)


@pytest.mark.parametrize("other", ["lanes", "dask", "rebuilt"])
def test_every_variable_is_bitwise_the_serial_runs(runs, other):
    ref = assert_bitwise_equal(runs["serial"], runs[other])
    assert ("/toy", "component") in ref and ("/toy", "cka") in ref  # what the audit caught
    # the labels are one fixed-width dtype, sized by the longest label
    component = ref[("/toy", "component")]
    longest = max(len(str(v)) for v in component.values)
    assert component.dtype == np.dtype(f"<U{longest}")


CKA_SCRIPT = """\
import numpy as np
from mispec.metrics.builtin.comparisons import linear_cka
rng = np.random.default_rng(0)
out = []
for _ in range(24):
    n, d = int(rng.integers(200, 3000)), int(rng.choice([16, 64, 128]))
    x = rng.standard_normal((n, d)).astype(np.float32).astype(np.float64)
    y = x @ rng.standard_normal((d, d)) + rng.standard_normal((n, d))
    out.append(linear_cka(x, y.astype(np.float32).astype(np.float64)))
print(np.array(out).tobytes().hex())
"""


def test_cka_is_the_same_whatever_the_blas_threads():
    """A Dask worker runs BLAS on one thread, the local executor on every core: CKA (the
    ``representation_similarity`` cells) must not depend on it, to the last bit."""
    import os
    import subprocess
    import sys

    from mispec.metrics.builtin.comparisons import linear_cka

    outs = []
    for threads in ("1", "8"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-c", CKA_SCRIPT], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outs.append(np.frombuffer(bytes.fromhex(done.stdout.strip())))
    assert outs[0].tobytes() == outs[1].tobytes()
    # and it is CKA: the formula by hand, and 1 for a rotated copy
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((300, 8)), rng.standard_normal((300, 5))
    xc, yc = x - x.mean(0), y - y.mean(0)
    by_hand = np.linalg.norm(yc.T @ xc) ** 2 / (
        np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    )
    assert linear_cka(x, y) == pytest.approx(by_hand, rel=1e-12)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    assert linear_cka(x, 3 * x @ q) == pytest.approx(1.0, rel=1e-12)
