"""One checkpoint of an opened model as a standard Hugging Face folder (``config.json`` +
``model.safetensors``, and the tokenizer where the model has one), loadable by
``transformers.AutoModelForCausalLM.from_pretrained`` and so by nnsight.

* a model that came from Hugging Face (the :class:`~mispec.models.handle.HFBoot` route: hub
  models with a revision per step, ``path:`` folders of HF checkpoints) is written as it is
  (``save_pretrained`` of the step's HF model);
* a TransformerLens-native model (the :class:`~mispec.models.handle.NativeSwap` route:
  mispec's trained toys, ``path:`` folders of state dicts, legacy TL hub models) is written
  as the exact GPT-2 of :mod:`mispec.models.hf_gpt2`, or refused (``ExportError``, naming
  why) when it has none.

The folder is written whole beside ``out`` and renamed into place: a refusal or a failure
leaves nothing behind, and an existing non-empty ``out`` is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mispec.errors import UserError
from mispec.models.handle import HFBoot, ModelHandle, NativeSwap


class ExportError(UserError):
    """A checkpoint that cannot be exported exactly (or a destination that is in use)."""


@dataclass(frozen=True)
class Exported:
    """What :func:`export_step` wrote: the folder, its files and how the weights were mapped
    (``"gpt2"``: a native model as GPT-2; ``"hf"``: the HF model as it is)."""

    out: Path
    files: tuple[str, ...]
    mapping: str
    architecture: str

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "files": list(self.files),
            "mapping": self.mapping,
            "architecture": self.architecture,
        }


def check_destination(out: Path) -> None:
    """``out`` must be absent or an empty folder (nothing of the user's is overwritten)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; choose another OUT")


def export_step(handle: Any, step: int, out: Path, *, what: str) -> Exported:
    """Write checkpoint ``step`` of the opened ``handle`` (a ``ModelHandle``) to ``out``;
    ``what`` names the model in errors ("model 'toy' seed 0 step 40")."""
    out = Path(out)
    check_destination(out)
    if not isinstance(handle, ModelHandle):
        raise ExportError(f"{what}: its source gives no weights mispec can export")
    route = handle.route
    if isinstance(route, NativeSwap):
        config, tensors = _native_as_gpt2(handle, step, what)
        return _publish(out, lambda d: _write_gpt2(d, config, tensors, handle), "gpt2", "GPT2")
    assert isinstance(route, HFBoot)
    model = route.model_for(step)
    arch = type(model).__name__
    return _publish(out, lambda d: _write_hf(d, model, handle), "hf", arch)


def _native_as_gpt2(handle: ModelHandle, step: int, what: str) -> tuple[dict, dict]:
    from mispec.models import hf_gpt2

    bridge = handle.load(step)
    cfg = bridge.cfg
    reason = hf_gpt2.gpt2_refusal(cfg)
    if reason is None:
        try:
            dtype = str(next(iter(bridge.state_dict().values())).dtype).removeprefix("torch.")
            return hf_gpt2.gpt2_config(cfg, dtype=dtype), hf_gpt2.gpt2_state(
                bridge.state_dict(), cfg
            )
        except ValueError as exc:
            reason = str(exc)
    raise ExportError(
        f"{what} cannot be exported as a standard Hugging Face model: {reason}. "
        "Nothing was written (mispec exports only an exact equivalent; load it with "
        "mispec.load_model instead)"
    )


def _write_gpt2(folder: Path, config: dict, tensors: dict, handle: ModelHandle) -> None:
    from safetensors.torch import save_file

    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _write_tokenizer(folder, handle)


def _write_hf(folder: Path, model: Any, handle: ModelHandle) -> None:
    model.save_pretrained(str(folder), safe_serialization=True)
    _write_tokenizer(folder, handle)


def _write_tokenizer(folder: Path, handle: ModelHandle) -> None:
    tokenizer = handle.tokenizer
    if tokenizer is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(folder))


def _publish(out: Path, write: Any, mapping: str, arch: str) -> Exported:
    """Write into a fresh folder beside ``out``, then rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-export-", dir=out.parent))
    try:
        write(staging)
        _plain_permissions(staging)
        if out.is_dir():
            out.rmdir()  # empty (checked): replaced by the written folder
        staging.rename(out)
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)
        raise
    files = tuple(sorted(p.name for p in out.iterdir()))
    return Exported(out, files, mapping, arch)


def _plain_permissions(folder: Path) -> None:
    """The modes a plain ``mkdir`` and ``open`` give under the umask (``mkdtemp`` and some
    writers make private files)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
