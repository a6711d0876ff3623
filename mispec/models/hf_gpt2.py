"""A TransformerLens-native model as an exact Hugging Face GPT-2 (``GPT2LMHeadModel``).

mispec's trained toys (and ``path:`` folders of native state dicts) are
``NativeModel``s: pre-norm blocks, split q/k/v/o with biases, learned positions, an
unembedding without bias. GPT-2 computes the same function when

* the normalization is LayerNorm (``LN``), or its parameter-free form (``LNPre``: weight 1,
  bias 0 — GPT-2 then holds those constants), with the same epsilon;
* the heads tile the residual stream (``n_heads * d_head == d_model``: GPT-2's head width is
  ``n_embd / n_head``) and the scores are divided by ``sqrt(d_head)``;
* the activation is one GPT-2 names exactly (``relu``; ``gelu`` is the erf GELU; ``gelu_new``
  is ``F.gelu(approximate="tanh")``, HF's ``gelu_pytorch_tanh``; ``silu``);
* an attention-only model's MLPs are zero (weights and biases all zero give an exact zero:
  every activation here maps 0 to 0), one hidden unit wide;
* the unembedding is untied and without bias (``tie_word_embeddings: false``).

Anything else (no normalization, RMSNorm, rotary positions, a gated MLP, grouped key/value
heads, soft caps, another attention scale, a SoLU mid-MLP LayerNorm, a non-zero unembedding
bias) has no exact GPT-2 form: :func:`gpt2_refusal` names the reason and nothing is
written. Conv1D (GPT-2's linear layers) store ``[in, out]``; the bridge's ``[out, in]``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# TransformerLens act_fn -> HF ACT2FN name computing the same function
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_pytorch_tanh", "silu": "silu"}


def gpt2_refusal(cfg: Any) -> str | None:
    """Why the native model ``cfg`` (a ``TransformerBridgeConfig``) has no exact GPT-2 form,
    or ``None`` when it has one."""
    norm = cfg.normalization_type
    if norm is None:
        return "it has no normalization (normalization: null), and GPT-2 always has LayerNorm"
    if norm.upper() not in ("LN", "LNPRE"):
        return f"its normalization is {norm}; GPT-2 has LayerNorm only (LN or LNPre export)"
    if getattr(cfg, "final_rms", False):
        return "its final norm is RMSNorm (final_rms); GPT-2 has LayerNorm only"
    pos = (getattr(cfg, "positional_embedding_type", None) or "standard").lower()
    if pos != "standard":
        return f"its positions are {pos}; GPT-2 learns absolute positions only"
    if cfg.n_heads * cfg.d_head != cfg.d_model:
        return (
            f"n_heads * d_head = {cfg.n_heads} * {cfg.d_head} != d_model = {cfg.d_model}; "
            "GPT-2's heads are d_model / n_heads wide"
        )
    if not cfg.attn_only:
        if getattr(cfg, "gated_mlp", False):
            return "its MLP is gated; GPT-2's is not"
        act = (cfg.act_fn or "gelu").lower()
        if act not in ACTIVATIONS:
            return (
                f"its activation {act} has no exact GPT-2 form (supported: {sorted(ACTIVATIONS)})"
            )
    if (cfg.n_key_value_heads or cfg.n_heads) != cfg.n_heads:
        return "it groups key/value heads; GPT-2 has one key/value per head"
    if cfg.attention_dir != "causal":
        return f"its attention is {cfg.attention_dir}; GPT-2's is causal"
    if not math.isclose(_attn_scale(cfg), math.sqrt(cfg.d_head), rel_tol=0, abs_tol=0):
        return f"its attention scale is {_attn_scale(cfg)}; GPT-2 divides by sqrt(d_head)"
    if float(cfg.attn_scores_soft_cap) > 0 or float(cfg.output_logits_soft_cap) > 0:
        return "it soft-caps scores or logits; GPT-2 does not"
    if cfg.d_vocab_out > 0 and cfg.d_vocab_out != cfg.d_vocab:
        return f"its output vocabulary ({cfg.d_vocab_out}) differs from its input ({cfg.d_vocab})"
    return None


def _attn_scale(cfg: Any) -> float:
    """The divisor of the scores, as ``NativeAttention`` picks it."""
    if cfg.use_attn_scale and cfg.attn_scale > 0:
        return float(cfg.attn_scale)
    return math.sqrt(cfg.d_head)


def gpt2_config(cfg: Any, *, dtype: str) -> dict[str, Any]:
    """``config.json`` of the GPT-2 computing what ``cfg`` computes (check
    :func:`gpt2_refusal` first)."""
    act = "relu" if cfg.attn_only else ACTIVATIONS[(cfg.act_fn or "gelu").lower()]
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": int(cfg.d_vocab),
        "n_positions": int(cfg.n_ctx),
        "n_embd": int(cfg.d_model),
        "n_layer": int(cfg.n_layers),
        "n_head": int(cfg.n_heads),
        "n_inner": 1 if cfg.attn_only else int(cfg.d_mlp or 4 * cfg.d_model),
        "activation_function": act,
        "layer_norm_epsilon": float(cfg.eps),
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": None,
        "torch_dtype": dtype,
        "dtype": dtype,
    }


def gpt2_state(state: dict[str, torch.Tensor], cfg: Any) -> dict[str, torch.Tensor]:
    """The bridge-keyed weights ``state`` of a native model as ``GPT2LMHeadModel`` weights
    (contiguous copies; a ``ValueError`` for a non-zero unembedding bias)."""
    import torch

    bias = state.get("unembed.bias")
    if bias is not None and bool(torch.any(bias != 0)):
        raise ValueError("its unembedding has a non-zero bias; GPT-2's lm_head has none")
    d, dtype = cfg.d_model, state["embed.weight"].dtype
    ones, zeros = torch.ones(d, dtype=dtype), torch.zeros(d, dtype=dtype)

    def norm(prefix: str, into: str) -> dict[str, torch.Tensor]:
        weight = state.get(f"{prefix}.weight", ones)  # LNPre: no parameters
        return {f"{into}.weight": weight, f"{into}.bias": state.get(f"{prefix}.bias", zeros)}

    out = {
        "transformer.wte.weight": state["embed.weight"],
        "transformer.wpe.weight": state["pos_embed.weight"],
        **norm("ln_final", "transformer.ln_f"),
        "lm_head.weight": state["unembed.weight"],
    }
    for layer in range(cfg.n_layers):
        b, h = f"blocks.{layer}", f"transformer.h.{layer}"
        qkv = [state[f"{b}.attn.{x}.weight"].T for x in "qkv"]
        out[f"{h}.attn.c_attn.weight"] = torch.cat(qkv, dim=1)
        out[f"{h}.attn.c_attn.bias"] = torch.cat([state[f"{b}.attn.{x}.bias"] for x in "qkv"])
        out[f"{h}.attn.c_proj.weight"] = state[f"{b}.attn.o.weight"].T
        out[f"{h}.attn.c_proj.bias"] = state[f"{b}.attn.o.bias"]
        out.update(norm(f"{b}.ln1", f"{h}.ln_1"))
        if cfg.attn_only:  # a zero MLP, one unit wide: exactly zero, whatever the input
            out[f"{h}.ln_2.weight"], out[f"{h}.ln_2.bias"] = ones, zeros
            out[f"{h}.mlp.c_fc.weight"] = torch.zeros(d, 1, dtype=dtype)
            out[f"{h}.mlp.c_fc.bias"] = torch.zeros(1, dtype=dtype)
            out[f"{h}.mlp.c_proj.weight"] = torch.zeros(1, d, dtype=dtype)
            out[f"{h}.mlp.c_proj.bias"] = zeros
        else:
            out.update(norm(f"{b}.ln2", f"{h}.ln_2"))
            out[f"{h}.mlp.c_fc.weight"] = state[f"{b}.mlp.in.weight"].T
            out[f"{h}.mlp.c_fc.bias"] = state[f"{b}.mlp.in.bias"]
            out[f"{h}.mlp.c_proj.weight"] = state[f"{b}.mlp.out.weight"].T
            out[f"{h}.mlp.c_proj.bias"] = state[f"{b}.mlp.out.bias"]
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in out.items()}
