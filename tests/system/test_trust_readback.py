"""Every architecture a ``train:`` model can have reads back as a ``path:`` folder (issue 26,
item 9): the run folder mispec writes, opened through the local-folder source, gives the
very logits of the trained model. An explicit null in the config (``normalization: null``:
no LayerNorm) is a value, not a missing key."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from mispec.models import runs
from mispec.models.configs import tl_config_kwargs
from mispec.models.training import ensure_trained
from mispec.sources import LocalFolderSource, TrainedSource
from mispec.sources.local_folder import LocalFolderModelSpec
from mispec.sources.trained import TrainedModelSpec
from mispec.spec.train import ArchSpec

BASE = {"n_layers": 1, "n_heads": 2, "d_model": 16, "d_head": 8, "d_mlp": 32}


def _choices(field: str) -> list[typing.Any]:
    """Every value the schema allows for a Literal (or optional Literal) field of ``arch``."""
    out: list[typing.Any] = []
    for arg in typing.get_args(ArchSpec.model_fields[field].annotation) or ():
        out.extend(typing.get_args(arg) if typing.get_origin(arg) is typing.Literal else [arg])
    return [None if v is type(None) else v for v in out]


def _architectures() -> list[dict[str, typing.Any]]:
    """Each value of every choice field of ``arch`` (from the schema, so a new option is
    covered), with and without MLPs, 1 and 2 layers, plus the no-normalisation combinations."""
    archs = [dict(BASE)]
    for field in ("normalization", "act_fn", "positional_embedding"):
        archs += [{**BASE, field: value} for value in _choices(field)]
    for norm in _choices("normalization"):
        archs.append({**BASE, "attn_only": True, "normalization": norm, "n_layers": 2})
    archs.append({**BASE, "normalization": None, "positional_embedding": "rotary", "n_layers": 2})
    archs.append({**BASE, "d_mlp": None, "act_fn": "solu_ln"})
    unique = {repr(sorted(a.items())): a for a in archs}
    return list(unique.values())


def test_the_enumeration_covers_every_choice_of_the_schema():
    archs = _architectures()
    assert None in _choices("normalization") and "RMSPre" in _choices("normalization")
    for field in ("normalization", "act_fn", "positional_embedding"):
        seen = {a.get(field, ArchSpec.model_fields[field].default) for a in archs}
        assert seen == set(_choices(field)), field
    assert {a.get("attn_only", False) for a in archs} == {True, False}


def _logits(handle, step: int, tokens: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return handle.load(step)(tokens).detach().double().numpy()


def _label(arch: dict[str, typing.Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in arch.items() if BASE.get(k, "?") != v) or "base"


@pytest.mark.parametrize("arch", _architectures(), ids=_label)
def test_a_trained_model_reads_back_through_a_path_folder(tmp_path: Path, arch):
    train = {"task": "previous_token", "task_args": {}, "arch": arch, "steps": 1, "batch_size": 4}
    entry = TrainedModelSpec(train=train, seeds=[0], checkpoints="all")
    trained = TrainedSource("toy", entry, tmp_path)
    ensure_trained("toy", entry.train, 0, [0, 1], tmp_path, progress=False)
    folder = runs.run_dir(entry.train, 0, tmp_path)

    local = LocalFolderSource("back", LocalFolderModelSpec(path=str(folder)), tmp_path)
    assert local.check({}) == [], "validate must say ok only for what can be read"
    assert local.info().attn_only == trained.info().attn_only
    assert local.info().d_mlp == trained.info().d_mlp

    tokens = torch.as_tensor([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]], dtype=torch.long)
    for step in (0, 1):
        want = _logits(trained.open(0, tmp_path), step, tokens)
        got = _logits(local.open(0, tmp_path), step, tokens)
        np.testing.assert_array_equal(got, want)

    kwargs = tl_config_kwargs({"tl_config": runs.native_config(entry.train, 0)})
    assert kwargs.get("normalization_type", "LN") == arch.get("normalization", "LN")
