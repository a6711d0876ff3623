"""The vocabulary metrics speak: the kinds of metric, the dims a result may have, the names a
metric may not take, the hooks a forward pass can record, and what an arg may index.
"""

from __future__ import annotations

from typing import Literal

MetricKind = Literal["activation", "intervention", "weights", "derived", "reduction"]

# The closed vocabulary of result dimensions.
DIMS: tuple[str, ...] = (
    "model",
    "seed",
    "step",
    "layer",
    "head",
    "pos",
    "batch",
    "neuron",
    "component",
    "freq",
    "src_layer",
    "src_head",
    "dst_layer",
    "dst_head",
    "pc",
    "mode",
    "split",
    "digit",
    # per-checkpoint values that comparisons read, and the second side of a comparison
    "vocab",
    "d_model",
    "d_head",
    "k_pos",
    "seed_b",
    "step_b",
    "head_b",
    "element",
    # grokking and the algorithmic-task library: flat parameters, phases of a run
    "param",
    "phase",
)
# Coordinates the assembly adds beside the dims (``mispec.results.assemble``): ``tokens_seen``
# along ``step``.
ASSEMBLED_COORDS: tuple[str, ...] = ("tokens_seen",)
# Names a metric cannot take: each metric is a variable of its model's result dataset, beside
# the dims and coordinates above (a variable named ``layer`` would overwrite that coordinate).
RESERVED_NAMES: frozenset[str] = frozenset(DIMS) | frozenset(ASSEMBLED_COORDS)
CONTEXT_PARAMS = frozenset({"acts", "prompts", "model", "bridge"})

# Hooks computed from the logits by the executor (cheap to store, unlike full logits):
PSEUDO_HOOKS = {
    "logits": "[batch, pos, vocab] output logits",
    "final_logits": "[batch, vocab] logits at the last position",
    "next_logprob": "[batch, pos-1] log-probability of the actual next token",
    "next_correct": "[batch, pos-1] 1.0 where the argmax prediction is the next token",
}

# The hook templates of a TransformerLens model (``HookedTransformer`` and the names
# ``TransformerBridge`` keeps compatible), ``{layer}`` standing for a block's index: what a
# spec's top-level ``cache:`` may name beside the hooks its metrics read.
_BLOCK_HOOKS = (
    "hook_resid_pre",
    "hook_resid_mid",
    "hook_resid_post",
    "hook_attn_in",
    "hook_q_input",
    "hook_k_input",
    "hook_v_input",
    "hook_mlp_in",
    "hook_attn_out",
    "hook_mlp_out",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_z",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.hook_result",
    "attn.hook_rot_q",
    "attn.hook_rot_k",
    "ln1.hook_scale",
    "ln1.hook_normalized",
    "ln2.hook_scale",
    "ln2.hook_normalized",
    "mlp.hook_pre",
    "mlp.hook_pre_linear",
    "mlp.hook_post",
)
TL_HOOK_TEMPLATES: tuple[str, ...] = (
    "hook_embed",
    "hook_pos_embed",
    "ln_final.hook_scale",
    "ln_final.hook_normalized",
    *(f"blocks.{{layer}}.{h}" for h in _BLOCK_HOOKS),
)

# What an arg may index (``@metric(indexes=...)``), and the ``ModelInfo`` field that bounds it:
# validation checks each such arg against every model the metric runs on whose shape is known
# before running.
INDEX_AXES: dict[str, str] = {
    "layer": "n_layers",
    "head": "n_heads",
    "neuron": "d_mlp",
    "pos": "n_ctx",
    "vocab": "d_vocab",
}
