"""Padding never enters a metric: text prompts of different lengths (right-padded, with an
``attention_mask`` extra) give, for every builtin metric that reads tokens or positions,
exactly what each prompt gives run ALONE, unpadded — checked against ``transformers`` (its
``labels=`` loss, its logits and attentions) and TransformerLens's ``head_detector`` on a
tiny GPT-NeoX (Pythia-style) checkpoint folder with a tokenizer."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from transformer_lens import head_detector as hd

from mispec.errors import PromptError
from mispec.metrics.builtin.attention import (
    PATTERN,
    duplicate_token_score,
    induction_score,
    previous_token_score,
)
from mispec.metrics.builtin.interventions import activation_patching, head_ablation
from mispec.metrics.builtin.logits import logit_diff
from mispec.metrics.builtin.loss import accuracy, icl_score, loss, per_token_loss
from mispec.metrics.forward import run_forward
from mispec.prompts.core import PromptSet
from mispec.prompts.text import load_text_prompts

try:  # tests/ as a package (tests/__init__.py or `python -m pytest`)
    from tests.helpers.tiny_neox import build_checkpoint_folder
except ImportError:  # tests/ itself on sys.path (pytest rootdir-relative)
    from helpers.tiny_neox import build_checkpoint_folder

TEXTS = [
    "w1 w2 w3 w4 w1 w2 w3 w4",
    "w7 w8",
    "w9 w1 w2 w9 w1",
    "w3 w3 w5 w3 w3 w5 w3",
    "w10 w11 w12 w13 w14 w15 w10 w11 w12 w13 w14",
]
HOOKS = ["next_logprob", "next_correct", PATTERN, "logits"]


@functools.cache
def setup() -> tuple[Path, PromptSet]:
    import tempfile

    from transformers import AutoTokenizer

    root = build_checkpoint_folder(Path(tempfile.mkdtemp()) / "run", [100])
    folder = root / "step100"
    (root / "prompts.txt").write_text("\n".join(TEXTS) + "\n")
    ps = load_text_prompts(root / "prompts.txt", AutoTokenizer.from_pretrained(str(folder)))
    assert len(set(ps.meta["lengths"])) > 1 and not ps.extras["attention_mask"].all()
    return folder, ps


@functools.cache
def bridge():
    from transformer_lens.model_bridge import TransformerBridge

    b = TransformerBridge.boot_transformers(str(setup()[0]), device="cpu")
    b.eval()
    return b


@functools.cache
def hf():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(setup()[0]), attn_implementation="eager").eval()


def alone(i: int) -> torch.Tensor:
    """Prompt ``i`` without its padding, ``[1, len_i]``."""
    _, ps = setup()
    return torch.from_numpy(ps.tokens[i : i + 1, : ps.meta["lengths"][i]])


@functools.cache
def acts() -> dict:
    _, ps = setup()
    return run_forward(bridge(), torch.from_numpy(ps.tokens), HOOKS, batch_size=2)


def test_loss_is_transformers_labels_loss_per_prompt_pooled_by_token():
    _, ps = setup()
    per_prompt, counts, nll, correct = [], [], {}, []
    for i, n in enumerate(ps.meta["lengths"]):
        ids = alone(i)
        with torch.no_grad():
            out = hf()(ids, labels=ids)
        per_prompt.append(float(out.loss))
        counts.append(n - 1)
        logp = torch.log_softmax(out.logits[0, :-1].double(), -1)
        for p in range(1, n):  # the loss on token p given tokens 0..p-1
            nll.setdefault(p, []).append(-float(logp[p - 1, ids[0, p]]))
        correct.extend((out.logits[0, :-1].argmax(-1) == ids[0, 1:]).tolist())
    a = acts()
    pooled = np.dot(per_prompt, counts) / np.sum(counts)
    assert loss(a, ps) == pytest.approx(pooled, abs=1e-4)
    assert accuracy(a, ps) == pytest.approx(np.mean(correct), abs=1e-9)
    # each prompt alone (a one-row set, still padded to the full width) is transformers' loss
    for i, expected in enumerate(per_prompt):
        row = PromptSet(
            tokens=ps.tokens[i : i + 1], extras={k: v[i : i + 1] for k, v in ps.extras.items()}
        )
        sliced = {"next_logprob": a["next_logprob"][i : i + 1]}
        assert loss(sliced, row) == pytest.approx(expected, abs=1e-4)
    ptl = per_token_loss(a, ps)
    assert list(ptl["pos"].values) == list(range(1, ps.seq_len))
    for p in range(1, ps.seq_len):
        assert float(ptl.sel(pos=p)) == pytest.approx(np.mean(nll[p]), abs=1e-4), p
    # icl reads per_token_loss: late positions only from the prompts that reach them
    icl = icl_score(ptl, early=1, late=ps.seq_len - 1)
    assert float(icl) == pytest.approx(np.mean(nll[ps.seq_len - 1]) - np.mean(nll[1]), abs=1e-4)


def tl_score(pattern, det, normalize: str, exclude_bos: bool) -> float:
    """head_detector's "mul" score; for target_rows the same over the rows with a target."""
    pattern = pattern.clone()
    if normalize == "target_rows":
        keep = det.clone()
        if exclude_bos:
            keep[:, 0] = 0
        rows = keep.sum(-1) > 0
        if not rows.any():
            return float("nan")
        pattern[~rows] = 0
    return hd.compute_head_attention_similarity_score(
        pattern, det, exclude_bos=exclude_bos, exclude_current_token=False, error_measure="mul"
    )


DETECTORS = {
    "induction": (induction_score, hd.get_induction_head_detection_pattern),
    "previous_token": (previous_token_score, hd.get_previous_token_head_detection_pattern),
    "duplicate_token": (duplicate_token_score, hd.get_duplicate_token_head_detection_pattern),
}


@pytest.mark.parametrize("kind", list(DETECTORS))
def test_head_scores_are_head_detector_on_each_unpadded_prompt(kind):
    _, ps = setup()
    fn, detector = DETECTORS[kind]
    attentions = []
    for i in range(ps.n):
        with torch.no_grad():
            attentions.append(hf()(alone(i), output_attentions=True).attentions)
    for normalize, exclude_bos in itertools.product(["target_rows", "all_rows"], [False, True]):
        ours = fn(acts(), ps, normalize=normalize, exclude_bos=exclude_bos)
        expected = np.zeros(ours.shape)
        for layer, head in itertools.product(*(range(n) for n in ours.shape)):
            scores = [
                tl_score(attentions[i][layer][0, head], detector(alone(i)), normalize, exclude_bos)
                for i in range(ps.n)
            ]
            expected[layer, head] = np.nanmean(scores)
        np.testing.assert_allclose(ours, expected, atol=1e-4, err_msg=f"{normalize} {exclude_bos}")


def with_answers(ps: PromptSet, **more: np.ndarray) -> PromptSet:
    n = ps.n
    extras = {**ps.extras, "answer": np.arange(3, 3 + n), "wrong_answer": np.arange(20, 20 + n)}
    return PromptSet(tokens=ps.tokens, extras={**extras, **more}, meta=ps.meta)


def ld_alone(i: int, ps: PromptSet, logits: torch.Tensor) -> float:
    """``logit[answer] - logit[wrong]`` at the last token of prompt ``i`` run alone."""
    last = logits[0, -1]
    return float(last[ps.extras["answer"][i]] - last[ps.extras["wrong_answer"][i]])


def test_logit_diff_reads_each_prompt_at_its_last_real_token():
    _, text = setup()
    ps = with_answers(text)
    with pytest.raises(PromptError, match="padding for 4 of 5 prompts.*answer_pos"):
        logit_diff({"final_logits": acts()["logits"][:, -1]}, ps)
    expected = []
    for i in range(ps.n):
        with torch.no_grad():
            expected.append(ld_alone(i, ps, hf()(alone(i)).logits))
    got = logit_diff({"logits": acts()["logits"]}, ps, position="answer_pos")
    assert got == pytest.approx(np.mean(expected), abs=1e-4)


def zero_head(h: int):
    def hook(x, hook):
        x[:, :, h] = 0.0
        return x

    return hook


def loss_alone(logits: torch.Tensor, ids: torch.Tensor) -> tuple[float, int]:
    """Summed next-token NLL of one unpadded prompt and its number of predictions."""
    logp = torch.log_softmax(logits[0, :-1].double(), -1)
    return -float(logp.gather(-1, ids[0, 1:, None]).sum()), ids.shape[1] - 1


def test_head_ablation_loss_and_mean_count_no_padding():
    _, ps = setup()
    b = bridge()
    layer, h = 1, 2
    name = f"blocks.{layer}.attn.hook_z"
    base, zeroed, total = 0.0, 0.0, 0
    zs = []
    with torch.no_grad():
        for i in range(ps.n):
            logits, cache = b.run_with_cache(alone(i), names_filter=[name])
            zs.append(cache[name][0])  # [len_i, head, d_head]
            s, n = loss_alone(logits, alone(i))
            base, total = base + s, total + n
            zeroed += loss_alone(
                b.run_with_hooks(alone(i), fwd_hooks=[(name, zero_head(h))]), alone(i)
            )[0]
    out = head_ablation(b, ps, method="zero", measure="loss")
    assert float(out.sel(layer=layer, head=h)) == pytest.approx((zeroed - base) / total, abs=1e-4)
    # the mean ablation's mean: at each position, over the prompts that have a token there
    width = ps.seq_len
    mean = torch.stack(
        [torch.stack([z[p] for z in zs if z.shape[0] > p]).mean(0) for p in range(width)]
    )

    def to_mean(x, hook):
        x[:, :, h] = mean[: x.shape[1], h]
        return x

    ablated = 0.0
    with torch.no_grad():
        for i in range(ps.n):
            logits = b.run_with_hooks(alone(i), fwd_hooks=[(name, to_mean)])
            ablated += loss_alone(logits, alone(i))[0]
    out = head_ablation(b, ps, method="mean", measure="loss")
    assert float(out.sel(layer=layer, head=h)) == pytest.approx((ablated - base) / total, abs=1e-4)


def test_activation_patching_reads_each_prompt_at_its_last_real_token():
    _, text = setup()
    corrupt = text.tokens.copy()
    corrupt[:, 1] = np.where(corrupt[:, 1] == 5, 6, 5)  # the first word, in every prompt
    ps = with_answers(text, corrupt_tokens=corrupt)
    b = bridge()
    layer, h = 1, 0
    name = f"blocks.{layer}.attn.hook_z"
    clean, bad, patched = [], [], []
    with torch.no_grad():
        for i in range(ps.n):
            n = ps.meta["lengths"][i]
            ids, cids = alone(i), torch.from_numpy(corrupt[i : i + 1, :n])
            logits, cache = b.run_with_cache(ids, names_filter=[name])
            clean.append(ld_alone(i, ps, logits))
            bad.append(ld_alone(i, ps, b(cids)))

            def patch(x, hook, z=cache[name]):
                x[:, :, h] = z[:, :, h]
                return x

            patched.append(ld_alone(i, ps, b.run_with_hooks(cids, fwd_hooks=[(name, patch)])))
    expected = (np.mean(patched) - np.mean(bad)) / (np.mean(clean) - np.mean(bad))
    out = activation_patching(b, ps, per="head", min_gap_z=0)
    assert float(out.sel(layer=layer, head=h)) == pytest.approx(expected, abs=1e-3)
