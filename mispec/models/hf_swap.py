"""Reusing one Hugging Face-backed bridge across the steps of a (model, seed), where that is
proven to give what a fresh boot gives.

Building a TransformerBridge around an HF model costs ~0.3 s (Pythia-70m shape, CPU) — more
than reading the checkpoint (`from_pretrained`: ~0.05 s) — and a sweep pays it per step. A
bridge reads the wrapped HF model's own parameters on every forward call, except for the
copies some components make when they are built: a ``JointQKVAttentionBridge`` splits the
joint q/k/v weight into three standalone linears. So a step can be loaded by copying its
HF state dict into the wrapped model's tensors and re-splitting q/k/v — but only if *every*
tensor the bridge holds is either one of the HF model's own (updated by the copy) or one of
those split copies (rebuilt). :meth:`HFSwap.attach` checks exactly that, tensor by
tensor. A tensor that is neither (the build made it, e.g. TransformerLens's zero unembedding
bias for a model without one) must come out equal in a second bridge built fresh from
checkpoint weights that differ (:meth:`HFSwap.confirm`, done on the second step loaded);
until then, and for good if it differs, every step boots fresh. :meth:`HFSwap.load` also refuses (returns False) a step whose keys,
shapes, dtypes or config differ from the first one's (the caller boots it fresh).
``tests/unit/test_models_hf.py`` checks swapped steps against fresh boots, bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch


def _storages(tensors: Any) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors if t.numel()}


def _config(model: Any) -> dict[str, Any]:
    """The HF config without the fields that name where a checkpoint came from."""
    data = dict(model.config.to_dict())
    return {k: v for k, v in data.items() if not k.startswith("_") and k != "transformers_version"}


class HFSwap:
    """The wrapped HF model's tensors by state-dict key (taken before the bridge is built:
    building it rewrites the HF model's module tree), and the q/k/v splitters."""

    def __init__(self, live: dict[str, Any], config: dict[str, Any], joint: list[Any]):
        self.live, self.config, self.joint = live, config, joint
        self.own: set[int] = set()
        self.unknown: dict[str, Any] = {}
        self.proven = False

    @classmethod
    def capture(cls, hf_model: Any) -> HFSwap:
        """What the swap needs of ``hf_model``, taken BEFORE a bridge is built around it:
        its tensors by key and every tensor it owns (building the bridge rewrites its
        module tree, which then also holds the bridge's own tensors)."""
        swap = cls(dict(hf_model.state_dict(keep_vars=True)), _config(hf_model), [])
        swap.own = _storages([*hf_model.parameters(), *hf_model.buffers()])
        return swap

    def attach(self, bridge: Any) -> HFSwap | None:
        """This swapper for ``bridge`` (built around the captured model). Every tensor the
        bridge holds that is neither one of that model's nor a split q/k/v copy is kept in
        ``unknown`` (a tensor the build made, e.g. a zero unembedding bias for a model
        without one): the swap is :attr:`proven` only when there is none, or once
        :meth:`confirm` found them equal in a bridge built fresh from other weights."""
        try:
            from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import (
                JointQKVAttentionBridge,
            )
        except ImportError:
            return None
        joint = [m for m in bridge.modules() if isinstance(m, JointQKVAttentionBridge)]
        split = _storages(
            t
            for m in joint
            for part in (m.q, m.k, m.v)
            for t in (*part.parameters(), *part.buffers())
        )
        known = self.own | split
        self.unknown = {
            name: t.detach().clone()
            for name, t in [*bridge.named_parameters(), *bridge.named_buffers()]
            if t.numel() and t.untyped_storage().data_ptr() not in known
        }
        self.proven = not self.unknown
        self.joint = joint
        return self

    def confirm(self, earlier: HFSwap) -> bool:
        """Whether the tensors the build made (``unknown``) are the same in this fresh bridge
        as in ``earlier``'s, built from weights that differ: then they do not depend on the
        weights and a swap leaves them right. Sets :attr:`proven`."""
        differs = self.live.keys() == earlier.live.keys() and any(
            not torch.equal(self.live[k], earlier.live[k]) for k in self.live
        )
        same = self.unknown.keys() == earlier.unknown.keys() and all(
            torch.equal(v, earlier.unknown[k]) for k, v in self.unknown.items()
        )
        self.proven = self.proven or (differs and same)
        return self.proven

    def load(self, hf_model: Any) -> bool:
        """Copy ``hf_model``'s weights into the live bridge; False (nothing changed) when the
        swap is not proven, or its keys, shapes, dtypes or config differ from the live
        model's."""
        if not self.proven:
            return False
        state = hf_model.state_dict()
        if state.keys() != self.live.keys() or _config(hf_model) != self.config:
            return False
        if any(
            self.live[k].shape != v.shape or self.live[k].dtype != v.dtype for k, v in state.items()
        ):
            return False
        with torch.no_grad():
            for key, value in state.items():
                self.live[key].copy_(value)
            for m in self.joint:  # rebuild the split q/k/v from the new joint weights
                m.set_original_component(m.original_component)
        return True
