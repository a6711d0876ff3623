"""Hugging Face-format checkpoints → TransformerBridge.

Swapping weights into a live HF-backed bridge is not safe in general
(``load_state_dict(strict=False)`` skips keys silently; copying into the wrapped HF
parameters leaves the bridge's split q/k/v stale); :mod:`mispec.models.hf_swap` does it
only where it proves the result equals a fresh boot. Each checkpoint is loaded with
``from_pretrained`` (eager attention, so
attention patterns are hookable) and wrapped by ``TransformerBridge.boot_transformers``
with ``hf_model=`` — ~40 ms on top of reading the weights. Without a tokenizer the
bridge is assembled by ``build_bridge_from_module`` (``boot_transformers`` would try to
download one). Hub models are read from the local cache first (no network round-trip);
the hub is only tried when ``HF_HUB_OFFLINE`` is unset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mispec.errors import CheckpointError
from mispec.models import hub
from mispec.models.native import freeze, torch_dtype

# Loaded with ``add_bos_token=True`` as TransformerLens wants it: otherwise every boot
# re-loads the tokenizer by name (``setup_tokenizer``), from the hub for hub models.
_BOS = {"add_bos_token": True}


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _auto_tokenizer(source: str, **kw: Any) -> Any:
    """``AutoTokenizer`` with ``add_bos_token=True`` where the tokenizer has a BOS."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **_BOS, **kw)
    except ValueError:  # no BOS token: transformers 5 refuses add_bos_token
        return AutoTokenizer.from_pretrained(source, **kw)


def local_tokenizer(folder: Path) -> Any:
    _quiet()
    try:
        return _auto_tokenizer(str(folder))
    except Exception as exc:
        raise CheckpointError(f"cannot load the tokenizer in {folder}: {exc}") from exc


def hub_tokenizer(repo_id: str, revision: str | None = None) -> Any:
    """The tokenizer of a hub model: cached revision ``revision``/main/any, else online."""
    _quiet()
    revisions = [revision, "main", *hub.cached_revisions(repo_id)]
    for rev in dict.fromkeys(revisions):
        if hub.snapshot_dir(repo_id, rev) is None:
            continue
        try:
            return _auto_tokenizer(
                repo_id, revision=rev, cache_dir=str(hub.hf_cache_dir()), local_files_only=True
            )
        except Exception:
            continue
    if hub.is_offline():
        raise CheckpointError("tokenizer: " + hub.fetch_hint(repo_id, revision))
    try:
        return _auto_tokenizer(repo_id, revision=revision, cache_dir=str(hub.hf_cache_dir()))
    except Exception as exc:
        raise CheckpointError(f"tokenizer: {exc}. " + hub.fetch_hint(repo_id, revision)) from exc


def load_hf_model(
    source: str | Path, *, revision: str | None = None, dtype: str = "float32", device: str = "cpu"
) -> Any:
    """``AutoModelForCausalLM`` from a local folder or a hub repo (cache first)."""
    from transformers import AutoModelForCausalLM as _Auto

    AutoModelForCausalLM: Any = _Auto  # its decorated from_pretrained confuses type checkers
    _quiet()
    kw = dict(attn_implementation="eager", dtype=torch_dtype(dtype))
    if isinstance(source, Path):
        try:
            model = AutoModelForCausalLM.from_pretrained(str(source), **kw)
        except Exception as exc:
            raise CheckpointError(f"cannot load the checkpoint in {source}: {exc}") from exc
        return model.to(device).eval()
    cache = str(hub.hf_cache_dir())
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, revision=revision, cache_dir=cache, local_files_only=True, **kw
        )
    except OSError:
        if hub.is_offline():
            raise CheckpointError(hub.fetch_hint(source, revision)) from None
        try:
            model = AutoModelForCausalLM.from_pretrained(
                source, revision=revision, cache_dir=cache, **kw
            )
        except Exception as exc:
            raise CheckpointError(f"{exc}. " + hub.fetch_hint(source, revision)) from exc
    return model.to(device).eval()


def bridge_from_hf(hf_model: Any, name: str, *, tokenizer: Any, device: str, dtype: str) -> Any:
    """Wrap a loaded HF model in a TransformerBridge (eval mode, no gradients)."""
    from transformer_lens.model_bridge import TransformerBridge

    if tokenizer is not None:
        bridge = TransformerBridge.boot_transformers(
            name, hf_model=hf_model, tokenizer=tokenizer, device=device, dtype=torch_dtype(dtype)
        )
    else:
        from transformer_lens.model_bridge.sources import build_bridge_from_module
        from transformer_lens.model_bridge.sources.transformers import (
            determine_architecture_from_hf_config,
        )

        arch = determine_architecture_from_hf_config(hf_model.config)
        bridge = build_bridge_from_module(
            hf_model,
            arch,
            hf_config=hf_model.config,
            dtype=torch_dtype(dtype),
            device=device,
            model_name=name,
        )
    return freeze(bridge)
