"""Shared fixtures: tiny specs written into temp folders, a CLI runner."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check values, not speed: a per-example deadline only measures how busy the
# machine is (a loaded 2-core box ran one example in 233 ms against the default 200 ms).
settings.register_profile("mispec", deadline=None)
settings.load_profile("mispec")

TOY_SPEC = """\
mispec: 1
name: tiny
models:
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 40
      batch_size: 16
    seeds: [0]
    checkpoints: {steps: [0, 20, 40]}
prompts:
  rep:
    generator: repeated_tokens
    args: {n: 8, vocab: 16, half_len: 6}
    seed: 1
metrics:
  loss: {fn: loss, prompts: rep}
  per_token_loss: {fn: per_token_loss, prompts: rep, args: {mask: none}}
  induction: {fn: induction_score, prompts: rep}
  icl: {fn: icl_score, inputs: {per_token_loss: per_token_loss}, args: {early: 1, late: 10}}
  transition: {fn: transition_step, inputs: {series: induction}}
"""


@pytest.fixture
def write_spec(tmp_path: Path):
    """``write_spec(text, name="spec.yaml") -> Path`` inside a fresh project folder."""
    (tmp_path / ".mispec").mkdir(exist_ok=True)

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def toy_spec(write_spec) -> Path:
    return write_spec(TOY_SPEC)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def default_study(tmp_path_factory):
    """The embedded default study, run once per test session in its own project folder."""
    import shutil

    import mispec

    project = tmp_path_factory.mktemp("default-study")
    (project / ".mispec").mkdir()
    spec = project / "induction_heads.yaml"
    shutil.copy(REPO / "specs" / "induction_heads.yaml", spec)
    result = mispec.run(spec, progress=False)
    return project, spec, result
