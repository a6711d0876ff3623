"""Structured ``.jsonl`` prompt sets: answers, corrupt twins, named positions, token strings and
word starts, and ``mispec validate`` refusing a bad line at the ``.jsonl``'s own line."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

import pytest

from mispec.cli.main import main
from mispec.prompts.records import PromptFileError
from mispec.prompts.text import load_text_prompts

try:
    from tests.helpers.tiny_neox import build_checkpoint_folder, build_hf_cache, build_tokenizer
except ImportError:
    from helpers.tiny_neox import build_checkpoint_folder, build_hf_cache, build_tokenizer

# "wK" is token id K + 3 in the tiny WordLevel tokenizer (<bos> <eos> <unk> w0 w1 ...)
LINES = [
    {"text": "w1 w2 w3 w1 w4", "answer": "w2", "wrong_answer": "w1",
     "corrupt_text": "w1 w2 w3 w5 w4", "positions": {"IO": {"word": 1}, "S2": 3, "END": "last"}},
    {"text": "w6 w7 w6", "answer": "w7", "wrong_answer": "w6",
     "corrupt_text": "w6 w7 w8", "positions": {"IO": {"word": -2}, "S2": {"token": -1}, "END": "last"}},
]  # fmt: skip


def write_jsonl(path: Path, lines: list) -> Path:
    path.write_text("\n".join(json.dumps(x) if isinstance(x, dict) else x for x in lines) + "\n")
    return path


def test_structured_jsonl_extras(tmp_path):
    tok = build_tokenizer(16)
    ps = load_text_prompts(write_jsonl(tmp_path / "p.jsonl", LINES), tok)
    w = lambda k: k + 3  # noqa: E731
    bos, pad = tok.bos_token_id, tok.pad_token_id
    assert ps.tokens.tolist() == [
        [bos, w(1), w(2), w(3), w(1), w(4)],
        [bos, w(6), w(7), w(6), pad, pad],
    ]
    assert ps.extras["corrupt_tokens"].tolist() == [
        [bos, w(1), w(2), w(3), w(5), w(4)],
        [bos, w(6), w(7), w(8), pad, pad],
    ]
    assert ps.extras["answer"].tolist() == [w(2), w(7)]
    assert ps.extras["wrong_answer"].tolist() == [w(1), w(6)]
    # positions index the padded row, BOS counted
    assert ps.extras["pos_IO"].tolist() == [2, 2]
    assert ps.extras["pos_S2"].tolist() == [4, 3]
    assert ps.extras["pos_END"].tolist() == [5, 3]
    assert ps.extras["token_strings"][1].tolist() == ["<bos>", "w6", "w7", "w6", "", ""]
    assert ps.extras["word_start"][1].tolist() == [False, True, True, True, False, False]
    assert ps.meta["lines"] == [1, 2]


def test_word_starts_with_subword_tokens(tmp_path):
    """A byte-level BPE splits rare words into pieces: only a word's first piece starts it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    corpus = ["When Mary and John went to the store, John gave a drink to Mary"] * 20
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>"], initial_alphabet=alphabet)
    raw.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>")
    text = "When Maryanne and Johnathan went (to the store"
    rec = {"text": text, "positions": {"J": {"word": 3}, "P": {"word": 5}}}
    ps = load_text_prompts(write_jsonl(tmp_path / "b.jsonl", [rec]), tok)
    strings = ps.extras["token_strings"][0].tolist()
    assert "".join(strings[1:]) == text  # BOS, then pieces that spell the text
    starts = ps.extras["word_start"][0]
    # independently: walk the pieces; a piece starts a word iff it holds a non-space character
    # that follows a space (or opens the text)
    expected, before = [False], " "
    for piece in strings[1:]:
        expected.append(
            any(c != " " and b == " " for b, c in zip(before[-1] + piece[:-1], piece, strict=True))
        )
        before += piece
    assert starts.tolist() == expected
    assert starts.sum() == len(text.split())
    assert len(strings) - 1 > len(text.split())  # some words really are several pieces
    assert strings[ps.extras["pos_J"][0]].startswith(" Joh")
    assert strings[ps.extras["pos_P"][0]] in ("(", " (", " (to")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({**LINES[1], "answer": "w7 w8"}, "answer 'w7 w8' is 2 tokens"),
        (
            {k: v for k, v in LINES[1].items() if k != "wrong_answer"},
            "missing field 'wrong_answer'",
        ),
        ({**LINES[1], "corrupt_text": "w6 w7"}, "corrupt_text is 2 tokens, text is 3"),
        ({**LINES[1], "positions": {"IO": {"word": 7}, "S2": 1, "END": "last"}}, "position 'IO'"),
        ({"txt": "w1"}, "unknown field 'txt'"),
    ],
)
def test_bad_line_is_an_error_at_that_line(tmp_path, bad, message):
    tok = build_tokenizer(16)
    path = write_jsonl(tmp_path / "p.jsonl", [LINES[0], "", bad])
    with pytest.raises(PromptFileError) as err:
        load_text_prompts(path, tok)
    assert err.value.line == 3 and message in str(err.value)


@functools.cache
def checkpoint_folder() -> Path:
    return build_checkpoint_folder(Path(tempfile.mkdtemp()) / "run", [0, 10], vocab_size=16)


SPEC = """\
mispec: 1
name: jsonl
models:
  neox: {{path: {folder}, checkpoints: all}}
prompts:
  ioi: {{file: p.jsonl}}
metrics:
  ld: {{fn: logit_diff, prompts: ioi, args: {{position: answer_pos}}}}
  patch: {{fn: activation_patching, prompts: ioi}}
"""


def test_validate_reports_the_jsonl_line_exit_2(write_spec, capsys):
    spec = write_spec(SPEC.format(folder=checkpoint_folder()))
    jsonl = spec.parent / "p.jsonl"
    write_jsonl(jsonl, LINES)
    assert main(["validate", str(spec)]) == 0
    capsys.readouterr()
    write_jsonl(jsonl, [LINES[0], {**LINES[1], "answer": "w7 w9"}])
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{jsonl}:2:1: prompts.ioi: answer 'w7 w9' is 2 tokens for model 'neox'" in err
    assert "Traceback" not in err
    write_jsonl(jsonl, [LINES[0], {**LINES[1], "corrupt_text": "w6 w7 w8 w9"}])
    assert main(["validate", str(spec)]) == 2
    assert f"{jsonl}:2:1: prompts.ioi: corrupt_text is 4 tokens" in capsys.readouterr().err
    # a metric that reads an extra the file lacks is refused at the metric
    write_jsonl(jsonl, [{"text": r["text"]} for r in LINES])
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "metrics.ld.prompts: metric 'logit_diff' reads the prompt extras 'answer'" in err
    assert "add the field to every line of its .jsonl file" in err
    assert not (spec.parent / "runs").exists()


def test_validate_reads_a_pretrained_models_tokenizer_from_the_hf_cache(
    write_spec, capsys, tmp_path, monkeypatch
):
    """A hub model whose tokenizer is already in the HF cache is checked offline at validate."""
    cache = build_hf_cache(tmp_path / "hub", "EleutherAI/pythia-14m", (0,), vocab_size=16)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = SPEC.format(folder="x").replace(
        "{path: x, checkpoints: all}",
        "{pretrained: EleutherAI/pythia-14m, checkpoints: {steps: [0]}}",
    )
    spec = write_spec(text)
    jsonl = write_jsonl(spec.parent / "p.jsonl", [LINES[0], {**LINES[1], "answer": "w7 w9"}])
    assert main(["validate", str(spec)]) == 2
    assert f"{jsonl}:2:1: prompts.ioi: answer 'w7 w9' is 2 tokens for model 'neox'" in (
        capsys.readouterr().err
    )
