"""The model-source seam, proven from outside the package: a source defined here (its
checkpoints live in memory), registered by name or named ``module:Class`` in the spec, runs a
study whose loss equals a cross-entropy computed by hand from the same weights and tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel, ConfigDict

import mispec
from mispec.errors import SpecError
from mispec.hashing import content_key
from mispec.models.handle import ModelHandle, NativeSwap
from mispec.models.info import ModelInfo
from mispec.sources import SOURCES, CheckpointHandle, ModelSource


class MemoryOptions(BaseModel):
    """The spec's ``options:`` of a ``memory`` model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    steps: list[int]
    n_layers: int = 1
    n_heads: int = 2
    d_model: int = 16
    d_head: int = 8
    d_vocab: int = 16
    n_ctx: int = 16


def native_kwargs(o: MemoryOptions, seed: int) -> dict:
    """TransformerBridgeConfig arguments of an attention-only toy."""
    return dict(
        n_layers=o.n_layers, n_heads=o.n_heads, d_model=o.d_model, d_head=o.d_head,
        d_vocab=o.d_vocab, n_ctx=o.n_ctx, attn_only=True, act_fn="relu",
        normalization_type="LN", positional_embedding_type="standard", seed=seed,
    )  # fmt: skip


def memory_weights(kwargs: dict, seed: int, step: int) -> dict[str, torch.Tensor]:
    """The checkpoint of (seed, step): a fresh native model initialised from its own seed."""
    from mispec.models.native import boot

    return {
        k: v.clone() for k, v in boot({**kwargs, "seed": 1000 * seed + step}).state_dict().items()
    }


class MemorySource(ModelSource):
    """Checkpoints computed in memory: nothing on disk, nothing to train."""

    kind = "memory"
    options_type = MemoryOptions

    def opts(self) -> MemoryOptions:
        options = self.options
        assert isinstance(options, MemoryOptions)
        return options

    def available_steps(self, seed: int) -> list[int]:
        return sorted(self.opts().steps)

    def checkpoint_identity(self, seed: int, step: int) -> str:
        return content_key("memory", self.opts().model_dump(), seed, step)

    def source_identity(self) -> str:
        return content_key("memory", self.opts().model_dump())

    def info(self) -> ModelInfo:
        o = self.opts()
        return ModelInfo(
            name=self.name, n_layers=o.n_layers, n_heads=o.n_heads, d_model=o.d_model,
            d_head=o.d_head, d_vocab=o.d_vocab, n_ctx=o.n_ctx, attn_only=True,
        )  # fmt: skip

    def open(
        self, seed: int, store_dir: Path, *, device: str = "cpu", dtype: str = "float32"
    ) -> CheckpointHandle:
        kwargs = native_kwargs(self.opts(), seed)
        route = NativeSwap(kwargs, lambda step: memory_weights(kwargs, seed, step))
        steps = self.available_steps(seed)
        return ModelHandle(
            self.name, seed, self.info(), route, steps=steps, device=device, dtype=dtype
        )


SOURCES.register("memory", MemorySource)

SPEC = """\
mispec: 1
name: in-memory
models:
  mem:
    source: {source}
    options: {options}
    seeds: [0, 1]
    device: cpu
prompts:
  rep:
    generator: repeated_tokens
    args: {{n: 4, vocab: 16, half_len: 5}}
    seed: 3
metrics:
  loss: {{fn: loss, prompts: rep, args: {{mask: none}}}}   # every prediction
  induction: {{fn: induction_score, prompts: rep}}
"""


def by_hand(seed: int, step: int, tokens: torch.Tensor) -> float:
    """Mean next-token cross-entropy of a bridge booted afresh with the step's weights."""
    from mispec.models.native import boot

    kwargs = native_kwargs(MemoryOptions(steps=[step]), seed)
    bridge = boot(kwargs)
    bridge.load_state_dict(memory_weights(kwargs, seed, step), strict=True)
    with torch.no_grad():
        logits = bridge(tokens)
    return float(
        torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)
        )
    )


@pytest.mark.parametrize("source", ["memory", f"{__name__}:MemorySource"])
def test_a_registered_source_runs_a_study(write_spec, source):
    from mispec.tasks.generators import PROMPT_GENERATORS

    spec = write_spec(SPEC.format(source=source, options="{steps: [0, 10, 30]}"))
    result = mispec.run(spec, progress=False)
    ds = mispec.open_results(result.run_dir)["mem"].to_dataset()
    assert ds.attrs["source"] == "memory"
    assert list(ds.seed.values) == [0, 1] and list(ds.step.values) == [0, 10, 30]
    assert "tokens_seen" not in ds.coords  # the source knows no tokens per step
    assert ds.induction.dims == ("seed", "step", "layer", "head")
    tokens = torch.from_numpy(
        PROMPT_GENERATORS.get("repeated_tokens")(seed=3, n=4, vocab=16, half_len=5).tokens
    )
    expected = [[by_hand(seed, step, tokens) for step in (0, 10, 30)] for seed in (0, 1)]
    np.testing.assert_allclose(ds.loss.values, expected, rtol=1e-5)
    assert len({round(v, 6) for v in ds.loss.values.ravel()}) == 6  # every checkpoint differs
    again = mispec.run(spec, progress=False)  # content keys from the source: all cached
    assert again.counters["forward_passes"] == 0 and again.counters["training_steps"] == 0


def test_a_source_checks_its_options_and_name(write_spec):
    bad = write_spec(SPEC.format(source="memory", options="{steps: [0, 5], d_modle: 3}"))
    with pytest.raises(SpecError) as err:
        mispec.load_spec(bad)
    [problem] = err.value.problems
    assert problem.key_path == "models.mem.options.d_modle" and problem.line == 6
    assert "Extra inputs are not permitted" in problem.message

    text = SPEC.format(source="memory", options="{steps: [0, 5]}")
    steps = "seeds: [0, 1]\n    checkpoints: {steps: [0, 7]}"
    missing = write_spec(text.replace("seeds: [0, 1]", steps))
    with pytest.raises(SpecError, match=r"models.mem.checkpoints: step 7 is not available"):
        mispec.load_spec(missing)

    typo = write_spec(SPEC.format(source="memroy", options="{steps: [0]}"))
    with pytest.raises(SpecError, match=r"unknown model source 'memroy' \(did you mean 'memory'"):
        mispec.load_spec(typo)

    builtin = write_spec(SPEC.format(source="path", options="{}"))
    with pytest.raises(SpecError, match=r"models.mem.source: .*write `path: ...`"):
        mispec.load_spec(builtin)
