"""Prompt generators (same format as training) and text prompt files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mispec.errors import PromptError
from mispec.prompts.text import load_text_prompts
from mispec.tasks import make_task
from mispec.tasks.generators import PROMPT_GENERATORS

try:  # tests/ as a package (tests/__init__.py or `python -m pytest`)
    from tests.helpers.tiny_neox import build_tokenizer
except ImportError:  # tests/ itself on sys.path (pytest rootdir-relative)
    from helpers.tiny_neox import build_tokenizer


def test_generators_registered():
    assert {"repeated_tokens", "modular_addition", "toy_ioi", "sorting"} <= set(
        PROMPT_GENERATORS.names()
    )


def test_repeated_tokens_prompts_match_training_format():
    ps = PROMPT_GENERATORS.get("repeated_tokens")(seed=123, n=10, vocab=32, half_len=7)
    train = make_task("repeated_tokens", {"vocab": 32, "half_len": 7}).batch(0, 0, 10)
    assert ps.tokens.shape == train.tokens.shape == (10, 15)
    assert (ps.extras["loss_mask"] == train.loss_mask).all()
    assert (ps.tokens[:, 0] == 0).all() and (ps.tokens[:, 1:8] == ps.tokens[:, 8:]).all()
    assert ps.meta["vocab"] == 32 and ps.meta["half_len"] == 7 and ps.has_bos
    again = PROMPT_GENERATORS.get("repeated_tokens")(seed=123, n=10, vocab=32, half_len=7)
    assert (again.tokens == ps.tokens).all()
    other = PROMPT_GENERATORS.get("repeated_tokens")(seed=124, n=10, vocab=32, half_len=7)
    assert not (other.tokens == ps.tokens).all()
    assert ps.max_token() < 32


def test_modular_addition_prompts_are_the_table():
    ps = PROMPT_GENERATORS.get("modular_addition")(seed=0, p=5, train_frac=0.4)
    task = make_task("modular_addition", {"p": 5, "train_frac": 0.4})
    assert ps.n == 25 and not ps.has_bos
    assert (ps.extras["train_mask"] == task.train_mask).all()
    assert (ps.extras["answer"] == (ps.tokens[:, 0] + ps.tokens[:, 1]) % 5).all()
    assert ps.meta["p"] == 5


def test_ioi_and_sorting_prompts():
    ps = PROMPT_GENERATORS.get("toy_ioi")(seed=0, n=12, n_names=6)
    assert {"corrupt_tokens", "answer", "wrong_answer", "answer_pos", "loss_mask"} <= set(ps.extras)
    assert ps.extras["corrupt_tokens"].shape == ps.tokens.shape
    ps = PROMPT_GENERATORS.get("sorting")(seed=0, n=4, length=3, max_value=9)
    assert ps.tokens.shape == (4, 8)


def test_text_prompts_txt_and_jsonl(tmp_path):
    tok = build_tokenizer(16)
    (tmp_path / "p.txt").write_text("w1 w2 w3\n\nw4\nw5 w6\n")
    ps = load_text_prompts(tmp_path / "p.txt", tok)
    assert ps.tokens.shape == (3, 4) and ps.has_bos
    bos, pad = tok.bos_token_id, tok.pad_token_id
    assert (ps.tokens[:, 0] == bos).all()
    assert ps.tokens[0].tolist() == [bos, 4, 5, 6]
    assert ps.tokens[1].tolist() == [bos, 7, pad, pad]
    assert ps.extras["attention_mask"][1].tolist() == [True, True, False, False]
    assert ps.extras["loss_mask"][1].tolist() == [True, False, False]
    assert ps.meta["lengths"] == [4, 2, 3]

    (tmp_path / "p.jsonl").write_text(
        "\n".join(json.dumps({"text": t}) for t in ["w1 w2 w3", "w4", "w5 w6"])
    )
    js = load_text_prompts(tmp_path / "p.jsonl", tok)
    assert (js.tokens == ps.tokens).all()

    nobos = load_text_prompts(tmp_path / "p.txt", tok, prepend_bos=False, max_tokens=2, limit=2)
    assert nobos.tokens.tolist() == [[4, 5], [7, pad]] and not nobos.has_bos


def test_text_prompt_errors(tmp_path):
    tok = build_tokenizer(16)
    with pytest.raises(PromptError, match=str(tmp_path / "missing.txt")):
        load_text_prompts(tmp_path / "missing.txt", tok)
    (tmp_path / "bad.jsonl").write_text('{"text": "w1"}\n{"txt": 1}\n')
    with pytest.raises(PromptError, match=r"bad.jsonl:2"):
        load_text_prompts(tmp_path / "bad.jsonl", tok)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(PromptError, match="no prompts"):
        load_text_prompts(tmp_path / "empty.txt", tok)
    with pytest.raises(PromptError, match="tokenizer"):
        load_text_prompts(tmp_path / "empty.txt", None)


def test_generators_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from mispec.tasks.generators import PROMPT_GENERATORS;"
        "PROMPT_GENERATORS.get('repeated_tokens')(seed=0);"
        "from mispec.sources import SOURCES; [SOURCES.get(s) for s in ('train', 'path')];"
        "import mispec.models; mispec.models.saved_steps;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert np is not None
