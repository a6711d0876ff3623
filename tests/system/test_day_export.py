"""From a result back to the model (issue 31 §2), with a real `mispec run` of tiny toys:

* `mispec.load_model` gives the bridge the metrics read: its logits and its hooked attention
  patterns, computed here independently, equal the run's stored `per_token_loss` and
  `bos_score` at that step;
* `mispec export-checkpoint` writes a Hugging Face folder that `transformers` loads, whose
  logits equal mispec's bridge on the same tokens (and so reproduce the stored metric);
* an architecture GPT-2 cannot represent exactly is refused (exit 2, nothing written), as are
  a used OUT folder and unknown models, seeds and steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2LMHeadModel

import mispec
from mispec.cli.main import main
from mispec.errors import CheckpointError, UserError

ARCH = "{n_layers: %d, n_heads: 2, d_model: 16, d_head: %d, %s}"
EXPORTABLE = {  # name -> arch extras
    "toy": (2, 8, "attn_only: true"),
    "mlp_lnpre": (1, 8, "d_mlp: 24, normalization: LNPre, act_fn: gelu_new"),
    "mlp_gelu": (2, 8, "d_mlp: 32, act_fn: gelu"),
}
REFUSED = {  # name -> (arch extras, what the refusal says)
    "nonorm": ((1, 8, "attn_only: true, normalization: null"), "no normalization"),
    "rms": ((1, 8, "attn_only: true, normalization: RMS"), "normalization is RMS"),
    "rope": ((1, 8, "attn_only: true, positional_embedding: rotary"), "positions are rotary"),
    "narrow": ((1, 4, "attn_only: true"), "n_heads * d_head = 2 * 4 != d_model = 16"),
}


def _model(name: str, arch: tuple[int, int, str], seeds: str = "[0, 1]", steps: int = 30) -> str:
    checkpoints = "[0, 10, 30]" if steps == 30 else f"[0, {steps}]"
    return f"""\
  {name}:
    train:
      task: repeated_tokens
      task_args: {{vocab: 16, half_len: 6}}
      arch: {ARCH % arch}
      steps: {steps}
      batch_size: 16
    seeds: {seeds}
    checkpoints: {{steps: {checkpoints}}}
"""


SPEC = (
    "mispec: 1\nname: export\nmodels:\n"
    + "".join(_model(n, a, "[1]" if n == "mlp_lnpre" else "[0, 1]") for n, a in EXPORTABLE.items())
    + "".join(_model(n, a, "[0]", steps=2) for n, (a, _) in REFUSED.items())
    + """\
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 8, vocab: 16, half_len: 6}
    seed: 1
metrics:
  per_token_loss: {fn: per_token_loss, prompts: rep, args: {mask: none}}
  bos: {fn: bos_score, prompts: rep}
"""
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    project = tmp_path_factory.mktemp("export")
    (project / ".mispec").mkdir()
    (project / "export.yaml").write_text(SPEC)
    result = mispec.run(project / "export.yaml", progress=False)
    return project, result.run_dir, result.open()


def _tokens() -> torch.Tensor:
    from mispec.tasks.generators import PROMPT_GENERATORS

    prompts = PROMPT_GENERATORS.get("repeated_tokens")(seed=1, n=8, vocab=16, half_len=6)
    return torch.as_tensor(np.asarray(prompts.tokens), dtype=torch.long)


def _per_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> np.ndarray:
    """Mean over prompts of each next-token cross-entropy (mask: none)."""
    logp = torch.log_softmax(logits.double(), dim=-1)[:, :-1]
    return (-logp.gather(-1, tokens[:, 1:, None])[..., 0]).mean(0).numpy()


def _stored(results, model: str, metric: str, seed: int, step: int) -> np.ndarray:
    return results[model][metric].sel(seed=seed, step=step).values


@pytest.mark.parametrize(("seed", "step"), [(0, 10), (1, 30)])
def test_load_model_gives_the_bridge_the_stored_metrics_were_computed_on(study, seed, step):
    _, run_dir, results = study
    bridge = mispec.load_model(run_dir, "toy", seed=seed, step=step)
    tokens = _tokens()
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(tokens)
    np.testing.assert_allclose(
        _per_token_loss(logits, tokens),
        _stored(results, "toy", "per_token_loss", seed, step),
        rtol=0,
        atol=1e-5,
    )
    # bos_score from the hooked patterns: the attention of every later query to position 0
    bos = np.stack(
        [
            cache[f"blocks.{layer}.attn.hook_pattern"][:, :, 1:, 0].mean((0, 2)).numpy()
            for layer in (0, 1)
        ]
    )
    np.testing.assert_allclose(bos, _stored(results, "toy", "bos", seed, step), rtol=0, atol=1e-6)
    # another step's weights differ: the check above could fail
    assert not np.allclose(
        _stored(results, "toy", "per_token_loss", seed, step),
        _stored(results, "toy", "per_token_loss", seed, 0),
    )


def test_load_model_defaults_to_the_last_step_and_takes_the_spec_file(study):
    project, run_dir, _ = study
    last = mispec.load_model(project / "export.yaml", "mlp_gelu", seed=1)
    at_30 = mispec.load_model(run_dir, "mlp_gelu", seed=1, step=30)
    at_10 = mispec.load_model(run_dir, "mlp_gelu", seed=1, step=10)
    w = "blocks.1.mlp.in.weight"
    assert torch.equal(last.state_dict()[w], at_30.state_dict()[w])
    assert not torch.equal(at_10.state_dict()[w], at_30.state_dict()[w])


def test_load_model_names_what_there_is_for_a_bad_model_seed_or_step(study):
    _, run_dir, _ = study
    with pytest.raises(UserError, match=r"no model 'toyy' in .*; its models: toy, mlp_lnpre"):
        mispec.load_model(run_dir, "toyy", seed=0)
    with pytest.raises(UserError, match=r"model 'toy' has no seed 7; its seeds: \[0, 1\]"):
        mispec.load_model(run_dir, "toy", seed=7)
    with pytest.raises(UserError, match=r"model 'toy' has seeds \[0, 1\]: choose one"):
        mispec.load_model(run_dir, "toy")
    with pytest.raises(
        CheckpointError, match=r"step 20 is not one of the run's checkpoints; available: 0, 10, 30"
    ):
        mispec.load_model(run_dir, "toy", seed=0, step=20)


@pytest.mark.parametrize("name", list(EXPORTABLE))
def test_an_exported_toy_loads_in_transformers_with_the_same_logits(study, tmp_path, name, capsys):
    _, run_dir, results = study
    out = tmp_path / "hf"
    argv = ["export-checkpoint", str(run_dir), name, str(out), "--seed", "1", "--step", "30"]
    assert main([*argv, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == ["config.json", "model.safetensors"] and report["mapping"] == "gpt2"
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert isinstance(hf, GPT2LMHeadModel)
    bridge = mispec.load_model(run_dir, name, seed=1, step=30)
    tokens = torch.cat(
        [_tokens(), torch.randint(0, 16, (4, 13), generator=torch.Generator().manual_seed(5))]
    )
    with torch.no_grad():
        ours, theirs = bridge(tokens), hf(tokens).logits
    diff = (ours - theirs).abs().max().item()
    assert diff < 1e-5, diff
    assert ours.abs().max() > 1  # logits large enough that a wrong mapping shows
    np.testing.assert_allclose(
        _per_token_loss(theirs[:8], tokens[:8]),
        _stored(results, name, "per_token_loss", 1, 30),
        rtol=0,
        atol=1e-5,
    )


@pytest.mark.parametrize("name", list(REFUSED))
def test_an_architecture_gpt2_cannot_represent_is_refused_and_nothing_is_written(
    study, tmp_path, name, capsys
):
    _, run_dir, _ = study
    out = tmp_path / "hf"
    assert main(["export-checkpoint", str(run_dir), name, str(out), "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert REFUSED[name][1] in err and "Nothing was written" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # no OUT, no staging folder left


def test_a_used_out_folder_is_refused_and_left_as_it_was(study, tmp_path, capsys):
    _, run_dir, _ = study
    out = tmp_path / "hf"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["export-checkpoint", str(run_dir), "toy", str(out), "--seed", "0"]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["hf"]
    assert [(p.name, p.read_text()) for p in out.iterdir()] == [("mine.txt", "keep")]
    assert main(["export-checkpoint", str(run_dir), "toy", str(out), "--step", "3"]) == 2
    assert (
        main(
            [
                "export-checkpoint",
                str(run_dir),
                "toy",
                str(tmp_path / "x"),
                "--seed",
                "0",
                "--step",
                "3",
            ]
        )
        == 2
    )
    assert "available: 0, 10, 30" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
