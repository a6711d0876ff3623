"""The spec of the batched-evaluation tests: one tiny trained toy (with MLPs and a tokenizer)
and, on the prompt sets they need, every built-in metric that reads activations
(``tests/system/test_batched_eval.py`` fails when a new one is missing here)."""

from __future__ import annotations

from pathlib import Path

MODEL = """\
  toy:
    train:
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, d_mlp: 32, d_vocab: 24, n_ctx: 24}
      steps: 30
      batch_size: 16
    seeds: [0]
    tokenizer: tok
    checkpoints: {steps: [0, 15, 30]}
"""
# every built-in metric that reads activations, on the prompt set it needs; plus a derived,
# a weights and an intervention metric (they read what the batched groups computed / loaded)
COVERAGE_SPEC = f"""\
mispec: 1
name: batched-coverage
models:
{MODEL}
prompts:
  rep: {{generator: repeated_tokens, args: {{n: 8, vocab: 16, half_len: 6}}, seed: 1}}
  ioi: {{generator: toy_ioi, args: {{n: 8, n_names: 8}}, seed: 2}}
  sums: {{generator: multi_digit_addition, args: {{n: 8, n_digits: 2}}, seed: 3}}
  table: {{generator: modular_addition, args: {{p: 5}}}}
  prose: {{file: prose.txt}}
metrics:
  loss: {{fn: loss, prompts: rep}}
  accuracy: {{fn: accuracy, prompts: rep}}
  per_token_loss: {{fn: per_token_loss, prompts: rep, args: {{mask: none}}}}
  token_logprobs: {{fn: token_logprobs, prompts: rep}}
  next_token_logprobs: {{fn: next_token_logprobs, prompts: rep}}
  logits: {{fn: logits, prompts: rep}}
  activations: {{fn: activations, prompts: rep, args: {{hook: z}}}}
  attention_patterns: {{fn: attention_patterns, prompts: rep, args: {{n_prompts: 8}}}}
  induction: {{fn: induction_score, prompts: rep}}
  previous: {{fn: previous_token_score, prompts: rep}}
  self_token: {{fn: self_token_score, prompts: rep}}
  neurons: {{fn: neuron_activation, prompts: rep}}
  top: {{fn: neuron_top_examples, prompts: rep, args: {{layer: 1, k: 3}}}}
  on_top:
    fn: top_examples
    prompts: rep
    args: {{layer: 1}}
    inputs: {{examples: {{metric: top, step: last}}}}
  icl: {{fn: icl_score, inputs: {{per_token_loss: per_token_loss}}, args: {{early: 1, late: 10}}}}
  ablation: {{fn: head_ablation, prompts: rep}}
  weight_norm: {{fn: weight_norm}}
  logit_diff: {{fn: logit_diff, prompts: ioi, args: {{position: answer_pos}}}}
  end_to_io: {{fn: attention_to, prompts: ioi, args: {{query_position: END, key_position: IO}}}}
  digit_loss: {{fn: digit_loss, prompts: sums}}
  digit_accuracy: {{fn: digit_accuracy, prompts: sums}}
  key_freqs: {{fn: key_frequencies, prompts: table, args: {{min_share: 0.0}}}}
  restricted:
    fn: restricted_loss
    prompts: table
    inputs: {{frequencies: {{metric: key_freqs, step: last}}}}
  excluded:
    fn: excluded_loss
    prompts: table
    inputs: {{frequencies: {{metric: key_freqs, step: last}}}}
  bos: {{fn: bos_score, prompts: prose}}
  duplicate: {{fn: duplicate_token_score, prompts: prose}}
  word_start: {{fn: start_of_word_score, prompts: prose}}
  bracket: {{fn: open_bracket_score, prompts: prose}}
"""
N_PROMPT_SETS = 5
PROSE = """\
w1(w2 w3) w4 w1w2
(w5 [w6 w5] w7) w6
w8 w8(w9 (w10) w11)
w2[w3 w4]w2 w3 w4w9
"""


def save_tokenizer(folder: Path) -> None:
    """A word-level tokenizer that splits brackets and glued words (``w1(w2`` → ``w1 ( w2``),
    so that words span several tokens (start-of-word targets) and brackets nest."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<bos>", "<eos>", "<unk>", "(", ")", "[", "]"] + [f"w{i}" for i in range(12)]
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Split(pattern=Regex("w[0-9]+"), behavior="isolated"),
        ]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=raw, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        pad_token="<eos>",
    ).save_pretrained(folder)  # fmt: skip
