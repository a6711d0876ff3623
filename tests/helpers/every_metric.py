"""One spec that names EVERY built-in metric, comparisons included, on a tiny trained toy
(MLPs and a tokenizer, two seeds, three checkpoints) and a second tiny model for the
cross-model comparisons: what ``tests/system/test_trust_executor_identity_all.py`` runs on every
executor. Built on the batched-evaluation coverage spec (every activation metric)."""

from __future__ import annotations

try:
    from tests.helpers.batched_coverage import COVERAGE_SPEC, MODEL
except ImportError:
    from helpers.batched_coverage import COVERAGE_SPEC, MODEL

# the coverage toy, two seeds and a handful of steps
TOY = (
    MODEL.replace("      steps: 30\n", "      steps: 4\n")
    .replace("seeds: [0]", "seeds: [0, 1]")
    .replace("{steps: [0, 15, 30]}", "{steps: [0, 2, 4]}")
)
# the other side of the cross-model comparisons: one seed, its last checkpoint only, smaller
# batches (else its step 2 would be the toy's, cached)
TOY_B = (
    MODEL.replace("  toy:", "  toy_b:", 1)
    .replace("      steps: 30\n", "      steps: 2\n")
    .replace("batch_size: 16", "batch_size: 8")
    .replace("{steps: [0, 15, 30]}", "{steps: [2]}")
)
# the coverage spec's prompt sets and metrics (every activation metric), minus its header
_PROMPTS_AND_METRICS = COVERAGE_SPEC.split("\nprompts:\n", 1)[1]
# every other built-in: weights, interventions, reductions over steps, comparisons
_MORE = """\
  params: {fn: parameters}
  flat: {fn: flat_weights, args: {include: [blocks.0.mlp]}}
  per_layer_norm: {fn: weight_norm, args: {group: layer}}
  composition: {fn: composition_score, args: {mode: K}}
  embed_spectrum: {fn: embed_fourier, args: {p: 5}}
  sparsity: {fn: fourier_sparsity, args: {p: 5}}
  head_change: {fn: head_weight_change, inputs: {reference: {metric: params, step: last}}}
  gap_z: {fn: patching_gap_z, prompts: ioi}
  patching: {fn: activation_patching, prompts: ioi, args: {min_gap_z: 0.0}}
  patching_pos: {fn: activation_patching, prompts: ioi, args: {per: position, min_gap_z: 0.0}}
  attribution: {fn: attribution_patching, prompts: ioi, args: {min_gap_z: 0.0}}
  head_pos: {fn: head_position_patching, prompts: ioi, args: {min_gap_z: 0.0}}
  path:
    fn: path_patching
    prompts: ioi
    args: {receivers: [[1, 0], [1, 1]], receiver_input: q, receiver_pos: END, min_gap_z: 0.0}
  backup: {fn: backup_heads, prompts: ioi}
  dla: {fn: direct_logit_attribution, prompts: ioi}
  dla_parts: {fn: direct_logit_attribution, prompts: ioi, args: {per: component}}
  lens: {fn: logit_lens, prompts: ioi}
  neuron_ablation: {fn: neuron_ablation, prompts: ioi, args: {layer: 0, neurons: [0, 1, 2]}}
  train_accuracy: {fn: accuracy, prompts: table, args: {mask: loss_mask, split: train}}
  test_accuracy: {fn: accuracy, prompts: table, args: {mask: loss_mask, split: test}}
  llc:
    fn: llc
    prompts: table
    args: {num_chains: 1, num_draws: 2, batch_size: 4, num_init_loss_batches: 1}
  induction_max: {fn: reduce, inputs: {x: induction}, args: {over: [layer, head], how: max}}
  previous_max: {fn: reduce, inputs: {x: previous}, args: {over: [layer, head], how: mean}}
  transition: {fn: transition_step, inputs: {series: loss}, args: {min_size: 0.0}}
  transition_size: {fn: transition_size, inputs: {series: loss}}
  crossing: {fn: crossing_step, inputs: {series: loss}, args: {min_size: 0.0}}
  crossing_width: {fn: crossing_width, inputs: {series: loss}, args: {min_size: 0.0}}
  crossing_size: {fn: crossing_size, inputs: {series: loss}}
  phases:
    fn: grokking_phases
    inputs: {train_accuracy: train_accuracy, test_accuracy: test_accuracy}
    args: {min_size: 0.0}
  phase_size:
    fn: grokking_phase_size
    inputs: {train_accuracy: train_accuracy, test_accuracy: test_accuracy}
  warn: {fn: warning_step, inputs: {progress: loss, target: induction_max}, args: {min_size: 0.0}}
  lead: {fn: warning_lead, inputs: {progress: loss, target: induction_max}, args: {min_size: 0.0}}
  alarms: {fn: false_alarms, inputs: {progress: previous_max, target: induction_max}}
  pca: {fn: pca_over_steps, inputs: {series: logits}, args: {k: 2}}
  kl: {fn: kl_divergence, inputs: {p: next_token_logprobs, q: next_token_logprobs}, pairs: seeds, models: [toy]}
  kl_to_last:
    fn: kl_divergence
    inputs: {p: next_token_logprobs, q: next_token_logprobs}
    pairs: {steps: last}
    args: {per: position}
  top1: {fn: top1_agreement, inputs: {p: next_token_logprobs, q: next_token_logprobs}, pairs: seeds, models: [toy]}
  logprob_diff:
    fn: logprob_diff
    inputs: {a: token_logprobs, b: token_logprobs}
    pairs: seeds
    models: [toy]
    args: {per: position}
  residual: {fn: activations, prompts: rep}
  cka: {fn: representation_similarity, inputs: {x: residual, y: residual}, pairs: seeds, models: [toy]}
  heads: {fn: head_matching, inputs: {x: attention_patterns, y: attention_patterns}, pairs: seeds, models: [toy]}
  distance: {fn: weight_distance, inputs: {a: params, b: params}, pairs: seeds, models: [toy]}
  to_last: {fn: weight_distance, inputs: {a: params, b: params}, pairs: {steps: last}}
  loss_all: {fn: loss, prompts: rep, args: {mask: none}}
  cross_patch:
    fn: cross_model_patching
    prompts: rep
    inputs: {source: activations, source_loss: loss_all}
    pairs: {models: [toy, toy_b], steps: last}
    models: [toy]
    args: {mask: none}
"""
EVERY_METRIC_SPEC = (
    "mispec: 1\nname: every-metric\nmodels:\n"
    + TOY
    + TOY_B
    + "prompts:\n"
    + _PROMPTS_AND_METRICS
    + _MORE
)
