"""`load_model` and `export-checkpoint` for a model that came from Hugging Face: a `path:`
folder of tiny GPT-NeoX checkpoints built here (the hub is unreachable). The export is the
HF model as it is — the same tensors as the source checkpoint, the tokenizer beside them —
and the bridge `load_model` returns is the one the run's loss was computed on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, GPTNeoXForCausalLM

import mispec
from mispec.cli.main import main
from tests.helpers.tiny_neox import build_checkpoint_folder

SPEC = """\
mispec: 1
name: hfexport
models:
  neox: {path: neox, checkpoints: all}
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 6, vocab: 16, half_len: 5}
    seed: 2
metrics:
  per_token_loss: {fn: per_token_loss, prompts: rep, args: {mask: none}}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    project = tmp_path_factory.mktemp("hfexport")
    (project / ".mispec").mkdir()
    build_checkpoint_folder(project / "neox", (0, 10), vocab_size=16, n_ctx=16)
    (project / "spec.yaml").write_text(SPEC)
    result = mispec.run(project / "spec.yaml", progress=False)
    return project, result.run_dir, result.open()


def _tokens() -> torch.Tensor:
    from mispec.tasks.generators import PROMPT_GENERATORS

    prompts = PROMPT_GENERATORS.get("repeated_tokens")(seed=2, n=6, vocab=16, half_len=5)
    return torch.as_tensor(np.asarray(prompts.tokens), dtype=torch.long)


def _per_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> np.ndarray:
    logp = torch.log_softmax(logits.double(), dim=-1)[:, :-1]
    return (-logp.gather(-1, tokens[:, 1:, None])[..., 0]).mean(0).numpy()


@pytest.mark.parametrize("step", [0, 10])
def test_load_model_of_an_hf_model_is_the_bridge_the_loss_was_computed_on(study, step):
    _, run_dir, results = study
    bridge = mispec.load_model(run_dir, "neox", step=step)
    tokens = _tokens()
    with torch.no_grad():
        logits = bridge(tokens)
    stored = results["neox"]["per_token_loss"].sel(seed=0, step=step).values
    np.testing.assert_allclose(_per_token_loss(logits, tokens), stored, rtol=0, atol=1e-5)


def test_an_hf_model_is_exported_as_it_is(study, tmp_path, capsys):
    project, run_dir, results = study
    out = tmp_path / "hf"
    assert main(["export-checkpoint", str(run_dir), "neox", str(out), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mapping"] == "hf" and report["architecture"] == "GPTNeoXForCausalLM"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(report["files"])
    # the same tensors as the source checkpoint of the last step (10), bit for bit
    source = load_file(project / "neox" / "step10" / "model.safetensors")
    exported = load_file(out / "model.safetensors")
    assert set(exported) == set(source)
    assert all(torch.equal(exported[k], source[k]) for k in source)
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    assert isinstance(hf, GPTNeoXForCausalLM)
    tokens = _tokens()
    with torch.no_grad():
        theirs = hf(tokens).logits
        ours = mispec.load_model(run_dir, "neox", step=10)(tokens)
    assert (ours - theirs).abs().max().item() < 1e-4
    stored = results["neox"]["per_token_loss"].sel(seed=0, step=10).values
    np.testing.assert_allclose(_per_token_loss(theirs, tokens), stored, rtol=0, atol=1e-5)


def test_diff_of_the_run_folder_finds_its_path_model_where_the_spec_lived(study):
    """The run folder holds a copy of spec.yaml, not the `path: neox` folder beside the
    original: `mispec diff RUN SPEC` resolves the relative path where the spec lived (before,
    it validated the copy against the run folder and refused: checkpoint folder not found)."""
    project, run_dir, results = study
    assert not (run_dir / "neox").exists() and (project / "neox").is_dir()
    d = mispec.diff(str(run_dir), str(project / "spec.yaml"))
    assert d.spec == [] and not d.has_differences
    assert d.results is not None and [v.change for v in d.results] == ["same"]
    assert main(["diff", str(run_dir), str(project / "spec.yaml")]) == 0
