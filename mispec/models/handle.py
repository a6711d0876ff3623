"""``ModelHandle``: (model, seed) → a TransformerBridge per step, as cheaply as is safe.

A model source (``mispec.sources``) opens a handle with one of two routes, each proven in
``tests/*/test_models_*.py`` against a fresh boot:

* :class:`NativeSwap` — mispec-trained models, ``path:`` folders of state-dict files, legacy
  TL hub models (``NeelNanda/…``): ONE ``boot_native`` bridge per handle; ``load(step)``
  reads the step's state dict (``mispec.models.state_dicts``) and swaps it in by copying
  each tensor into the live parameters (``mispec.models.swap``, ~0.2 ms for the toy;
  ``load_state_dict(strict=True)`` where that cannot be proven equivalent).
* :class:`HFBoot` — ``path:`` folders of HF checkpoints and hub models with a revision per
  step (Pythia, stanford-crfm, any HF model): each step's HF model is read with
  ``from_pretrained``; the first is wrapped in a bridge, and later steps are copied into
  that bridge's HF model where :mod:`mispec.models.hf_swap` proves it gives what a fresh
  boot gives (every tensor the bridge holds is the HF model's or a rebuilt q/k/v split);
  otherwise a fresh ``boot_transformers(hf_model=…)`` per step.

``load`` returns the bridge in eval mode with gradients off, on the handle's device and
dtype; the bridge of the previous step must not be used after the next ``load``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from mispec.errors import CheckpointError
from mispec.models import hf, native
from mispec.models.hf_swap import HFSwap
from mispec.models.info import ModelInfo
from mispec.models.swap import InPlaceSwap
from mispec.spec.selectors import check_step


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class NativeSwap:
    """One native bridge booted from ``kwargs`` (TransformerBridgeConfig arguments); each
    step's weights, ``state_for(step)`` with bridge keys, are swapped into it."""

    kwargs: dict[str, Any]
    state_for: Callable[[int], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class HFBoot:
    """A fresh bridge per step around ``model_for(step)``, an HF model already on the
    handle's device and dtype; ``name`` tells TransformerLens the architecture."""

    name: str
    model_for: Callable[[int], Any]


class ModelHandle:
    """One (model, seed): ``load(step)`` gives that checkpoint's bridge.

    ``steps`` are the steps that exist (or a function giving them, asked on first use);
    ``tokenizer`` loads the model's tokenizer on first use (``None``: a task model)."""

    def __init__(
        self,
        name: str,
        seed: int,
        info: ModelInfo,
        route: NativeSwap | HFBoot,
        *,
        steps: Sequence[int] | Callable[[], Sequence[int]],
        tokenizer: Callable[[], Any] | None = None,
        device: str = "cpu",
        dtype: str = "float32",
    ):
        self.name, self.seed, self.info, self.route = name, seed, info, route
        self.device, self.dtype = resolve_device(device), dtype
        self._steps = steps
        self._tokenizer_loader = tokenizer
        self._tokenizer: Any = None
        self._bridge: Any = None
        self._step: int | None = None
        self._swap: InPlaceSwap | Literal[False] | None = None  # False: the bridge can't
        self._hf_swap: HFSwap | None = None  # HF route: one bridge reused (mispec.models.hf_swap)

    @property
    def tokenizer(self) -> Any | None:
        """The model's tokenizer (loaded on first use), or ``None`` for task models."""
        if self._tokenizer is None and self._tokenizer_loader is not None:
            self._tokenizer = self._tokenizer_loader()
        return self._tokenizer

    def _optional_tokenizer(self) -> Any | None:
        """The tokenizer if it can be had; weights alone never fail for want of one."""
        try:
            return self.tokenizer
        except CheckpointError as exc:
            warnings.warn(f"model '{self.name}': no tokenizer ({exc})", stacklevel=4)
            return None

    def steps(self) -> list[int]:
        if callable(self._steps):
            self._steps = list(self._steps())
        return list(self._steps)

    def load(self, step: int) -> Any:
        """The bridge with checkpoint ``step`` loaded (eval, no grad, device, dtype)."""
        if self._step == step and self._bridge is not None:
            return self._bridge
        check_step(step, self.steps(), f"model '{self.name}' (seed {self.seed})")
        if isinstance(self.route, NativeSwap):
            self._load_native(self.route, step)
        else:
            model = self.route.model_for(step)
            if self._hf_swap is not None and self._bridge is not None and self._hf_swap.load(model):
                native.freeze(self._bridge)  # the rebuilt q/k/v: eval, no gradients
            else:
                self._bridge = None  # drop the previous checkpoint before loading the next
                captured = HFSwap.capture(model)  # before the build rewrites its modules
                self._bridge = hf.bridge_from_hf(
                    model,
                    self.route.name,
                    tokenizer=self.tokenizer,
                    device=self.device,
                    dtype=self.dtype,
                )
                earlier, self._hf_swap = self._hf_swap, captured.attach(self._bridge)
                if self._hf_swap is not None and earlier is not None:
                    self._hf_swap.confirm(earlier)  # the build's own tensors: weight-free?
        self._step = step
        return self._bridge

    def load_weights(self, step: int, state: dict[str, torch.Tensor]) -> Any:
        """The bridge with ``state`` (bridge keys) swapped in as checkpoint ``step``, read from
        memory instead of the checkpoint file (live metrics: the training loop's weights,
        bit-identical to what it saves). Native models only."""
        if not isinstance(self.route, NativeSwap):
            raise CheckpointError(f"model '{self.name}': only a native model takes live weights")
        self._load_native(self.route, step, state)
        self._step = step
        return self._bridge

    def _load_native(
        self, route: NativeSwap, step: int, state: dict[str, torch.Tensor] | None = None
    ) -> None:
        state = route.state_for(step) if state is None else state
        if self._bridge is None:
            self._bridge = native.boot(
                route.kwargs,
                device=self.device,
                dtype=self.dtype,
                tokenizer=self._optional_tokenizer(),
            )
        if self._swap is None:
            self._swap = InPlaceSwap.for_bridge(self._bridge) or False
        try:
            if self._swap and self._swap.matches(state):
                self._swap.load(state)  # one copy_ per tensor (mispec.models.swap)
            else:
                self._bridge.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"model '{self.name}' step {step}: weights do not match the config: {exc}"
            ) from exc

    def close(self) -> None:
        self._bridge = None
        self._swap = None
        self._hf_swap = None
        self._step = None

    def __enter__(self) -> ModelHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
