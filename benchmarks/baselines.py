"""The two hand-written contenders: the naive notebook loop and the compute floor.

Both compute the same four metrics as the mispec specs, with the same definitions (mispec's
defaults): ``loss`` (mean next-token cross-entropy), ``per_token_loss`` (batch mean per
predicted position), ``induction`` and ``prev_token`` (per (layer, head): attention mass on
the targets over the query rows that have a target, averaged over prompts).

* ``naive_*`` is what a researcher writes today with TransformerLens 4: for every checkpoint
  boot a fresh ``TransformerBridge`` (``boot_native`` + ``load_state_dict`` for the toy,
  ``boot_transformers(folder)`` for HF folders), ``run_with_cache`` with EVERY hook, then each
  metric computed on its own from the cache (the loss through ``log_softmax`` of the logits).
* ``floor_*`` is the least work: ONE bridge, weights swapped per checkpoint (one ``copy_`` per
  tensor into the live parameters), ONE forward pass keeping only the attention-pattern
  hooks (``run_with_hooks``), the metric arithmetic with the detection patterns built once,
  nothing written anywhere. Reading each checkpoint's weights file is counted
  (there is no computing without the weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

PATTERN = "blocks.{}.attn.hook_pattern"
Results = dict[int, dict[str, Any]]


# ------------------------------------------------------------------------ notebook metrics
def _nb_induction_targets(tokens: torch.Tensor) -> torch.Tensor:
    n = tokens.shape[1]
    earlier = torch.ones(n, n, dtype=torch.bool).tril(-1)
    same = (tokens[:, :, None] == tokens[:, None, :]) & earlier  # [b, q, k'] k' < q
    det = torch.zeros_like(same)
    det[:, :, 1:] = same[:, :, :-1]  # attend to the token after the earlier copy
    return det.float()


def _nb_prev_targets(tokens: torch.Tensor) -> torch.Tensor:
    b, n = tokens.shape
    det = torch.zeros(n, n)
    det[1:, :-1] = torch.eye(n - 1)
    return det.expand(b, n, n)


def _nb_head_score(pattern: torch.Tensor, det: torch.Tensor) -> torch.Tensor:
    """pattern [b, h, q, k], det [b, q, k] → [h]."""
    has_target = det.sum(-1) > 0  # [b, q]
    on_target = (pattern * det[:, None]).sum((-1, -2))  # [b, h]
    rows = (pattern.sum(-1) * has_target[:, None]).sum(-1)  # [b, h]
    return (on_target / rows).mean(0)


def notebook_metrics(logits: torch.Tensor, cache: Any, tokens: torch.Tensor, n_layers: int):
    """Each metric on its own, as in a notebook cell."""
    out: dict[str, Any] = {}
    # loss
    logp = logits.log_softmax(-1)
    nll = -logp[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)
    out["loss"] = nll.mean().item()
    # per-token loss
    logp = logits.log_softmax(-1)
    nll = -logp[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1)
    out["per_token_loss"] = nll.mean(0).numpy()
    # induction heads
    det = _nb_induction_targets(tokens)
    out["induction"] = torch.stack(
        [_nb_head_score(cache[PATTERN.format(layer)], det) for layer in range(n_layers)]
    ).numpy()
    # previous-token heads
    det = _nb_prev_targets(tokens)
    out["prev_token"] = torch.stack(
        [_nb_head_score(cache[PATTERN.format(layer)], det) for layer in range(n_layers)]
    ).numpy()
    return out


def naive_native(files: dict[int, Path], tl_config: dict, tokens: torch.Tensor) -> Results:
    from safetensors.torch import load_file
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    results: Results = {}
    for step, path in files.items():
        model = TransformerBridge.boot_native(TransformerBridgeConfig(**tl_config))
        model.load_state_dict(load_file(str(path)))
        model.eval()
        with torch.no_grad():
            logits, cache = model.run_with_cache(tokens)
        results[step] = notebook_metrics(logits, cache, tokens, model.cfg.n_layers)
        del model, logits, cache
    return results


def naive_hf(folders: dict[int, Path], tokens: torch.Tensor) -> Results:
    from transformer_lens.model_bridge import TransformerBridge

    results: Results = {}
    for step, folder in folders.items():
        model = TransformerBridge.boot_transformers(str(folder), device="cpu")
        model.eval()
        with torch.no_grad():
            logits, cache = model.run_with_cache(tokens)
        results[step] = notebook_metrics(logits, cache, tokens, model.cfg.n_layers)
        del model, logits, cache
    return results


# ------------------------------------------------------------------------------- the floor
class FloorMetrics:
    """The four metrics with the detection patterns and row counts built once."""

    def __init__(self, tokens: torch.Tensor, n_layers: int):
        self.tokens, self.n_layers = tokens, n_layers
        self.hooks = [PATTERN.format(layer) for layer in range(n_layers)]
        self.target = tokens[:, 1:, None]
        ind = _nb_induction_targets(tokens)
        self.ind = ind
        self.ind_rows = (ind.sum(-1) > 0).sum(-1).float()  # [b] (pattern rows sum to 1)
        n = tokens.shape[1]
        self.prev_rows = float(n - 1)

    def __call__(self, logits: torch.Tensor, cache: dict[str, torch.Tensor]) -> dict[str, Any]:
        # log_softmax of the whole (contiguous) logits, then the slice: ~1.5x faster on CPU
        # than logsumexp over the non-contiguous logits[:, :-1] view
        lp = logits.log_softmax(-1)[:, :-1].gather(-1, self.target).squeeze(-1)
        ind = torch.empty(self.n_layers, cache[self.hooks[0]].shape[1])
        prev = torch.empty_like(ind)
        for layer, hook in enumerate(self.hooks):
            p = cache[hook]  # [b, h, q, k]
            ind[layer] = (torch.einsum("bhqk,bqk->bh", p, self.ind) / self.ind_rows[:, None]).mean(
                0
            )
            prev[layer] = p.diagonal(-1, -2, -1).sum(-1).mean(0) / self.prev_rows
        return {
            "loss": -lp.mean().item(),
            "per_token_loss": (-lp.mean(0)).numpy(),
            "induction": ind.numpy(),
            "prev_token": prev.numpy(),
        }


def floor_native(files: dict[int, Path], tl_config: dict, tokens: torch.Tensor) -> Results:
    from safetensors.torch import load_file
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_native(TransformerBridgeConfig(**tl_config)).eval()
    metrics = FloorMetrics(tokens, bridge.cfg.n_layers)
    live = bridge.state_dict(keep_vars=True)  # the parameters themselves, by checkpoint key
    results: Results = {}
    with torch.no_grad():
        for step, path in files.items():
            for key, value in load_file(str(path)).items():  # the swap: one copy per tensor
                live[key].copy_(value)
            logits, cache = hooked_forward(bridge, tokens, metrics.hooks)
            results[step] = metrics(logits, cache)
    return results


def hooked_forward(bridge: Any, tokens: torch.Tensor, hooks: list[str]) -> tuple[Any, dict]:
    """One forward pass keeping only ``hooks`` (``run_with_hooks`` with caching hooks: the
    same tensors ``run_with_cache(names_filter=hooks)`` returns, without its scan of every
    hook point)."""
    cache: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Any:
        return lambda value, hook: cache.__setitem__(name, value.detach())

    logits = bridge.run_with_hooks(tokens, fwd_hooks=[(h, keep(h)) for h in hooks])
    return logits, cache


class HFSwap:
    """ONE HF-backed bridge; a checkpoint is swapped in by copying the HF state dict into the
    wrapped model's own parameters and re-splitting the joint q/k/v weights of every
    ``JointQKVAttentionBridge`` (its q/k/v are copies made at boot). ``check`` compares it
    with a fresh ``boot_transformers`` (bit-identical here)."""

    ALIASES = {"embed_out.weight": "lm_head.weight"}  # transformers 5 renamed GPT-NeoX's head

    def __init__(self, first_folder: Path):
        from transformer_lens.model_bridge import TransformerBridge
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(str(first_folder), attn_implementation="eager")
        self.live = dict(hf.state_dict(keep_vars=True))  # the tensors the bridge will wrap
        self.bridge = TransformerBridge.boot_transformers(
            str(first_folder), hf_model=hf, device="cpu"
        ).eval()
        from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
            JointQKVAttentionBridge,
        )

        self.joint = [m for m in self.bridge.modules() if isinstance(m, JointQKVAttentionBridge)]

    def load(self, folder: Path) -> Any:
        from safetensors.torch import load_file

        sd = load_file(str(folder / "model.safetensors"))
        with torch.no_grad():
            for key, value in sd.items():
                self.live[self.ALIASES.get(key, key)].copy_(value)
        for m in self.joint:
            m.set_original_component(m.original_component)
        return self.bridge


def floor_hf(folders: dict[int, Path], tokens: torch.Tensor) -> Results:
    steps = list(folders)
    swap = HFSwap(folders[steps[0]])
    metrics = FloorMetrics(tokens, swap.bridge.cfg.n_layers)
    results: Results = {}
    with torch.no_grad():
        for step in steps:
            bridge = swap.load(folders[step])
            logits, cache = hooked_forward(bridge, tokens, metrics.hooks)
            results[step] = metrics(logits, cache)
            del logits, cache
    return results


def check_hf_swap(folders: dict[int, Path], tokens: torch.Tensor) -> float:
    """Max |difference| (logits and patterns) between the swapped bridge and a fresh boot."""
    from transformer_lens.model_bridge import TransformerBridge

    steps = list(folders)
    swap = HFSwap(folders[steps[0]])
    last = folders[steps[-1]]
    hooks = [PATTERN.format(i) for i in range(swap.bridge.cfg.n_layers)]
    with torch.no_grad():
        a_logits, a = swap.load(last).run_with_cache(tokens, names_filter=hooks)
        fresh = TransformerBridge.boot_transformers(str(last), device="cpu").eval()
        b_logits, b = fresh.run_with_cache(tokens, names_filter=hooks)
    diffs = [float((a_logits - b_logits).abs().max())]
    diffs += [float((a[h] - b[h]).abs().max()) for h in hooks]
    return max(diffs)


# ------------------------------------------------------------------------------ comparing
def max_difference(a: Results, b: Results) -> dict[str, float]:
    """Per metric, the max |a - b| over all checkpoints."""
    out: dict[str, float] = {}
    for step in a:
        for name, value in a[step].items():
            d = float(np.nanmax(np.abs(np.asarray(value) - np.asarray(b[step][name]))))
            out[name] = max(out.get(name, 0.0), d)
    return out
