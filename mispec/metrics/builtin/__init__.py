"""The builtin metrics. Importing this package registers every one of them in ``METRICS``
(``mispec.metrics.core.load_builtin_metrics`` does so on first use); none imports torch or
xarray at import time.

========================  ============  ==========================================
metric                    kind          dims
========================  ============  ==========================================
loss, accuracy            activation    ()
per_token_loss            activation    (pos,)
digit_loss,               activation    (digit,)
digit_accuracy
icl_score                 derived       input dims without pos
induction_score,          activation    (layer, head)
previous_token_score,
duplicate_token_score
start_of_word_score,      activation    (layer, head)
open_bracket_score,
bos_score,
self_token_score,
attention_to
neuron_activation         activation    (layer, neuron)
neuron_top_examples       activation    (neuron, batch, pos)
top_examples              activation    (neuron,), with an input selection
neuron_ablation           intervention  (neuron,)
logit_diff                activation    ()
activation_patching       intervention  (layer, head) or (layer, pos)
patching_gap_z            intervention  ()
head_ablation             intervention  (layer, head)
direct_logit_attribution  intervention  (layer, head) or (layer, component)
logit_lens                intervention  (layer,)
head_position_patching    intervention  (layer, head, pos)
path_patching             intervention  (layer, head): sender heads
attribution_patching      intervention  (layer, head): first-order estimate
backup_heads              intervention  (src_layer, src_head, dst_layer, dst_head)
composition_score         weights       (src_layer, src_head, dst_layer, dst_head)
weight_norm               weights       (component,)
embed_fourier             weights       (freq,)
head_weight_change        weights       (layer, head) — against a ``parameters`` input
key_frequencies           activation    (freq,)
restricted_loss,          activation    ()  (input: key frequencies)
excluded_loss
fourier_sparsity          weights       (component,)
llc                       intervention  ()  (needs the llc extra: devinterp)
transition_step,          reduction     input dims without step
transition_size
crossing_step,            reduction     input dims without step
crossing_width,
crossing_size
warning_step,             reduction     ()  (inputs progress, target)
warning_lead,
false_alarms
pca_over_steps            reduction     (step, pc)
grokking_phases,          reduction     (phase,)
grokking_phase_size
logits                    activation    (batch, vocab)
flat_weights              weights       (param,)
reduce                    derived       input dims without ``over``
token_logprobs            activation    (batch, pos)
next_token_logprobs       activation    (batch, pos, vocab)
activations               activation    (layer, batch, pos, d_model | head, d_head)
attention_patterns        activation    (layer, head, batch, pos, k_pos)
kl_divergence,            derived, two  (), (pos,) or (batch, pos)
logprob_diff,             sides
top1_agreement
representation_similarity derived, two  (layer,)
head_matching             derived, two  (layer, head, head_b)
parameters                weights       (component, element)
weight_distance           derived, two  (component,)
cross_model_patching      intervention, (layer, head), (layer,) or (layer, pos)
                          two sides
========================  ============  ==========================================

A metric of "two sides" compares this cell's checkpoint with another one that a spec's
``pairs:`` names (``comparisons``).
"""

from mispec.metrics.builtin import (  # noqa: F401  (registers on import)
    attention,
    attention_families,
    attribution,
    checkpoint_values,
    comparisons,
    cross_patching,
    crossing,
    digits,
    dla,
    early_warning,
    grokking,
    interventions,
    llc,
    logits,
    loss,
    neurons,
    patching,
    phases,
    reductions,
    summaries,
    weight_change,
    weight_comparisons,
    weights,
)
