"""The builtin metrics. Importing this package registers every one of them in ``METRICS``
(``mispec.metrics.core.load_builtin_metrics`` does so on first use); none imports torch or
xarray at import time.

========================  ============  ==========================================
metric                    kind          dims
========================  ============  ==========================================
loss, accuracy            activation    ()
per_token_loss            activation    (pos,)
icl_score                 derived       input dims without pos
induction_score,          activation    (layer, head)
previous_token_score,
duplicate_token_score
logit_diff                activation    ()
activation_patching       intervention  (layer, head) or (layer, pos)
patching_gap_z            intervention  ()
head_ablation             intervention  (layer, head)
composition_score         weights       (src_layer, src_head, dst_layer, dst_head)
weight_norm               weights       (component,)
embed_fourier             weights       (freq,)
transition_step,          reduction     input dims without step
transition_size
crossing_step,            reduction     input dims without step
crossing_width
warning_step,             reduction     ()  (inputs progress, target)
warning_lead,
false_alarms
pca_over_steps            reduction     (step, pc)
reduce                    derived       input dims without ``over``
========================  ============  ==========================================
"""

from mispec.metrics.builtin import (  # noqa: F401  (registers on import)
    attention,
    crossing,
    early_warning,
    interventions,
    logits,
    loss,
    reductions,
    summaries,
    weights,
)
