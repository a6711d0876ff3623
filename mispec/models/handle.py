"""``ModelHandle``: (model, seed) → a TransformerBridge per step, as cheaply as is safe.

Routes (each proven in ``tests/test_models_*.py`` against a fresh boot):

* **native swap** — mispec-trained models, ``path:`` folders of state-dict files, legacy
  TL hub models (``NeelNanda/…``): ONE ``boot_native`` bridge per handle; ``load(step)``
  reads the step's state dict (safetensors, or ``.pth`` with ``weights_only=True``),
  converts legacy ``HookedTransformer`` keys with ``convert_tl_checkpoint`` and swaps it
  in by copying each tensor into the live parameters (``mispec.models.swap``, ~0.2 ms for
  the toy; ``load_state_dict(strict=True)`` where that cannot be proven equivalent).
* **HF boot** — ``path:`` folders of HF checkpoints and hub models with a revision per
  step (Pythia, stanford-crfm, any HF model): a fresh ``boot_transformers(hf_model=…)``
  per step (see ``mispec.models.hf`` for why swapping is unsafe there).

``load`` returns the bridge in eval mode with gradients off, on the handle's device and
dtype; the bridge of the previous step must not be used after the next ``load``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

from mispec.errors import CheckpointError
from mispec.models import checkpoints as ckpt
from mispec.models import hf, hub, native, schedules
from mispec.models.configs import read_json, tl_config_kwargs
from mispec.models.info import ModelInfo
from mispec.models.local import discover
from mispec.models.runs import MODEL_FILE, native_config, run_dir
from mispec.models.sources import (
    available_steps,
    check_step,
    local_root,
    model_info,
    pretrained_name,
)
from mispec.models.swap import InPlaceSwap
from mispec.spec.schema import ModelSpec


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` (checksum verified) or ``.pth``/``.pt`` (tensors
    only: ``torch.load(weights_only=True)``, never arbitrary pickles)."""
    if path.suffix == ".safetensors":
        return ckpt.read_tensors(path)[0]
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: unreadable state dict ({exc})") from exc
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: not a state dict")
    return sd.get("model", sd) if "model" in sd and isinstance(sd["model"], dict) else sd


def to_bridge_keys(
    sd: dict[str, torch.Tensor], cfg: Any, *, legacy_layout: str | None = None
) -> dict[str, torch.Tensor]:
    """Legacy ``HookedTransformer`` state dicts → bridge keys; bridge ones pass through."""
    if legacy_layout == "mingpt":  # Baidicoot/Othello-GPT: minGPT keys, split q/k/v
        from transformer_lens.model_bridge.sources.tl_legacy import _convert_mingpt_weights

        sd = _convert_mingpt_weights(sd, cfg)
    if not any(k.endswith((".W_E", ".W_Q", ".W_U")) for k in sd):
        return sd
    from transformer_lens.utilities.tl_checkpoint_conversion import convert_tl_checkpoint

    if legacy_layout == "neel-solu-old":
        from transformer_lens.model_bridge.sources.tl_legacy import _convert_neel_solu_old_weights

        sd = _convert_neel_solu_old_weights(sd, cfg)
    sd = {k: v for k, v in sd.items() if not k.endswith((".mask", ".IGNORE"))}
    out = convert_tl_checkpoint(sd, cfg)
    if "unembed.bias" not in out:  # several legacy repos have no unembedding bias
        out["unembed.bias"] = torch.zeros(cfg.d_vocab, dtype=next(iter(out.values())).dtype)
    return out


class ModelHandle:
    """One (model, seed): ``load(step)`` gives that checkpoint's bridge."""

    def __init__(
        self, name: str, model: ModelSpec, seed: int, info: ModelInfo, device: str, dtype: str
    ):
        self.name, self.model, self.seed, self.info = name, model, seed, info
        self.device, self.dtype = device, dtype
        self._steps: list[int] | None = None
        self._base_dir = Path(".")
        self._bridge: Any = None
        self._step: int | None = None
        self._tokenizer: Any = None
        self._tokenizer_loader: Callable[[], Any] | None = None
        # native swap route
        self._native_kwargs: dict[str, Any] | None = None
        self._state_for: Callable[[int], dict[str, torch.Tensor]] | None = None
        self._swap: InPlaceSwap | Literal[False] | None = None  # False: the bridge can't
        # HF route
        self._hf_for: Callable[[int], Any] | None = None
        self._hf_name = name

    # ------------------------------------------------------------------ open
    @classmethod
    def open(
        cls,
        name: str,
        model: ModelSpec,
        seed: int,
        base_dir: Path,
        store_dir: Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
    ) -> ModelHandle:
        base_dir, store_dir = Path(base_dir), Path(store_dir)
        h = cls(name, model, seed, model_info(name, model, base_dir), resolve_device(device), dtype)
        h._base_dir = base_dir
        if model.tokenizer is not None:
            folder = Path(model.tokenizer).expanduser()
            folder = folder if folder.is_absolute() else base_dir / folder
            h._tokenizer_loader = lambda: hf.local_tokenizer(folder)
        kind = model.source_kind
        if kind == "train":
            h._open_trained(store_dir)
        elif kind == "path":
            h._open_path(base_dir)
        else:
            h._open_pretrained()
        return h

    def _open_trained(self, store_dir: Path) -> None:
        from mispec.models.divergence import read_finite
        from mispec.models.training import ensure_trained

        train = self.model.train
        assert train is not None
        self._native_kwargs = native_config(train, self.seed)
        folder = run_dir(train, self.seed, store_dir)

        def state_for(step: int) -> dict[str, torch.Tensor]:
            path = folder / MODEL_FILE.format(step=step)
            if path.is_file():
                try:  # a NaN/inf checkpoint raises TrainingDivergedError
                    return read_finite(
                        path, name=self.name, train=train, seed=self.seed, step=step
                    )[0]
                except ckpt.CorruptCheckpoint as exc:
                    warnings.warn(f"{exc}; training step {step} again", stacklevel=3)
                    path.unlink(missing_ok=True)
            ensure_trained(self.name, train, self.seed, [step], store_dir, progress=True)
            return read_finite(path, name=self.name, train=train, seed=self.seed, step=step)[0]

        self._state_for = state_for
        self._steps = list(range(train.steps + 1))

    def _open_path(self, base_dir: Path) -> None:
        layout = discover(local_root(self.model, self.seed, base_dir))
        self._steps = layout.sorted_steps
        if layout.kind == "hf":
            folders = layout.steps
            self._hf_for = lambda step: hf.load_hf_model(
                folders[step], dtype=self.dtype, device=self.device
            )
            self._hf_name = str(layout.root)
            if self._tokenizer_loader is None:
                for d in [folders[self._steps[0]], layout.root]:
                    if hf.has_tokenizer(d):
                        self._tokenizer_loader = lambda d=d: hf.local_tokenizer(d)
                        break
            return
        assert layout.config is not None
        self._native_kwargs = tl_config_kwargs(read_json(layout.config))
        if self._tokenizer_loader is None and hf.has_tokenizer(layout.root):
            self._tokenizer_loader = lambda: hf.local_tokenizer(layout.root)
        cfg = native.bridge_config(self._native_kwargs)
        files = layout.steps
        self._state_for = lambda step: to_bridge_keys(read_state_dict(files[step]), cfg)

    def _open_pretrained(self) -> None:
        repo = pretrained_name(self.model, self.seed)
        if schedules.family(repo) == "tl_legacy":
            cfg_json = hub.hub_json(repo, "config.json")
            self._native_kwargs = tl_config_kwargs(cfg_json)
            cfg = native.bridge_config(self._native_kwargs)
            layout = cfg_json.get("architecture", "neel-solu-old" if "_old" in repo else "neel")
            self._state_for = lambda step: to_bridge_keys(
                read_state_dict(hub.tl_legacy_file(repo, step)), cfg, legacy_layout=layout
            )
            tok_name = cfg_json.get("tokenizer_name")
            if self._tokenizer_loader is None and tok_name:
                self._tokenizer_loader = lambda: hf.hub_tokenizer(tok_name)
            return
        self._hf_name = repo
        self._hf_for = lambda step: hf.load_hf_model(
            repo, revision=schedules.revision_for(repo, step), dtype=self.dtype, device=self.device
        )
        if self._tokenizer_loader is None:
            self._tokenizer_loader = lambda: hf.hub_tokenizer(repo)

    # ------------------------------------------------------------------ use
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
            warnings.warn(f"model '{self.name}': no tokenizer ({exc})", stacklevel=3)
            return None

    def steps(self) -> list[int]:
        if self._steps is None:
            self._steps = available_steps(self.model, self.seed, self._base_dir)
        return self._steps

    def load(self, step: int) -> Any:
        """The bridge with checkpoint ``step`` loaded (eval, no grad, device, dtype)."""
        if self._step == step and self._bridge is not None:
            return self._bridge
        check_step(step, self.steps(), f"model '{self.name}' (seed {self.seed})")
        if self._state_for is not None:
            assert self._native_kwargs is not None
            state = self._state_for(step)
            if self._bridge is None:
                self._bridge = native.boot(
                    self._native_kwargs,
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
        else:
            assert self._hf_for is not None
            self._bridge = None  # drop the previous checkpoint before loading the next
            hf_model = self._hf_for(step)
            self._bridge = hf.bridge_from_hf(
                hf_model,
                self._hf_name,
                tokenizer=self.tokenizer,
                device=self.device,
                dtype=self.dtype,
            )
        self._step = step
        return self._bridge

    def close(self) -> None:
        self._bridge = None
        self._swap = None
        self._step = None

    def __enter__(self) -> ModelHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
