"""Bit-identical results whatever runs them: the local executor in one process, its lanes
(worker processes), Dask (``dask-local``), and a rebuild from the cache — every variable,
coordinate and dtype, and the provenance checksums (the README's promise)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mispec

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


def _profile(root: Path, name: str, body: str) -> str:
    path = root / f"{name}.yaml"
    path.write_text(f"name: {name}\nkind: local\ntorch_threads: 1\n{body}")
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The spec run from scratch (its own store) by each executor, and once more from the
    serial run's store (every cell cached): the run folders by name."""
    from mispec.execute.lanes import LanePool

    root = tmp_path_factory.mktemp("identity")
    (root / ".mispec").mkdir()
    spec = root / "spec.yaml"
    spec.write_text(SPEC)
    executors = {
        "serial": _profile(root, "serial", "processes: 1\n"),
        "lanes": _profile(
            root, "lanes", "processes: 2\nparallel_min_steps: 1\nparallel_min_seconds: 0\n"
        ),
        "dask": "dask-local",
    }
    lanes: list[str] = []
    real_add = LanePool.add

    def spy(self, lane):
        lanes.append(lane[0].id)
        real_add(self, lane)

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(LanePool, "add", spy)
        for name, executor in executors.items():
            result = mispec.run(
                spec,
                executor=executor,
                store=root / f"store-{name}",
                out=root / f"run-{name}",
                progress=False,
            )
            assert result.counters["cells_cached"] == 0, name
            out[name] = result.run_dir
            if name == "lanes":
                assert lanes, "the lanes profile ran nothing in a worker process"
        rebuilt = mispec.run(
            spec,
            executor=executors["serial"],
            store=root / "store-serial",
            out=root / "run-rebuilt",
            progress=False,
        )
    assert rebuilt.counters["cells_computed"] == 0 and rebuilt.counters["forward_passes"] == 0
    out["rebuilt"] = rebuilt.run_dir
    return out


def _variables(run: Path) -> dict[tuple[str, str], xr.Variable]:
    tree = mispec.open_results(run).load()
    return {
        (node.path, str(name)): var
        for node in tree.subtree
        for name, var in node.to_dataset().variables.items()
    }


@pytest.mark.parametrize("other", ["lanes", "dask", "rebuilt"])
def test_every_variable_is_bitwise_the_serial_runs(runs, other):
    ref, got = _variables(runs["serial"]), _variables(runs[other])
    assert sorted(ref) == sorted(got)
    assert ("/toy", "component") in ref and ("/toy", "cka") in ref  # what the audit caught
    for where, a in ref.items():
        b = got[where]
        assert a.dims == b.dims and a.attrs == b.attrs, where
        assert a.dtype == b.dtype, (where, a.dtype, b.dtype)
        x, y = np.asarray(a.values), np.asarray(b.values)
        assert x.tobytes() == y.tobytes(), where
    # the labels are one fixed-width dtype, sized by the longest label
    component = ref[("/toy", "component")]
    longest = max(len(str(v)) for v in component.values)
    assert component.dtype == np.dtype(f"<U{longest}")
    prov = [json.loads((runs[n] / "provenance.json").read_text()) for n in ("serial", other)]
    assert prov[0]["checksums"] and prov[0]["checksums"] == prov[1]["checksums"]


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
