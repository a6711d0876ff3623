"""Local folders of checkpoints (``path:`` models): discovery and cheap identities.

Two layouts are recognised (no torch import, nothing but directory listings here):

* **HF folders** — one Hugging Face model folder per step, named ``step<N>``,
  ``step_<N>``, ``checkpoint-<N>`` or ``checkpoint_<N>`` (``config.json`` with a
  ``model_type`` + weights). A root that is itself one HF model folder is one
  checkpoint, step 0.
* **State-dict files** — ``<prefix>_<N>.safetensors`` / ``.pth`` / ``.pt`` files with a
  TransformerLens-style ``config.json`` (or the folder's only ``*.json``) beside them:
  legacy ``HookedTransformer`` state dicts or TransformerBridge state dicts, such as the
  ``model_<N>.safetensors`` files of a run mispec trained. Files whose prefix starts with
  ``optim`` are optimizer states and are ignored; a ``checkpoints/`` sub-folder is
  searched when the root holds none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from mispec.errors import CheckpointError
from mispec.hashing import bytes_digest, content_key
from mispec.models.configs import is_hf_config, read_json

STEP_DIR = re.compile(r"^(?:step[_-]?|checkpoint[_-])(\d+)$")
STEP_FILE = re.compile(r"^(?P<prefix>.*?)[_-]?(?P<step>\d+)\.(?:safetensors|pth|pt)$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
PROBE_BYTES = 1 << 20
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def has_tokenizer(folder: Path) -> bool:
    """Whether a Hugging Face tokenizer is saved in ``folder`` (a file listing only)."""
    return any((Path(folder) / f).is_file() for f in TOKENIZER_FILES)


@dataclass(frozen=True)
class LocalLayout:
    root: Path
    kind: Literal["hf", "state_dict"]
    steps: dict[int, Path]  # step -> HF folder or state-dict file
    config: Path | None = None  # the TL-style config.json of state-dict files
    extra: tuple[Path, ...] = field(default=())  # other files that identify the model

    @property
    def sorted_steps(self) -> list[int]:
        return sorted(self.steps)


def discover(root: Path) -> LocalLayout:
    """Find the checkpoints under ``root`` (``CheckpointError`` when there are none)."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {root}")
    dirs = _by_step(
        root,
        [
            (int(m.group(1)), p)
            for p in sorted(root.iterdir())
            if p.is_dir() and (m := STEP_DIR.match(p.name))
        ],
    )
    if dirs:
        for step, d in dirs.items():
            if not (d / "config.json").is_file():
                raise CheckpointError(f"{d}: step {step} folder has no config.json")
        return LocalLayout(root=root, kind="hf", steps=dirs)
    if (root / "config.json").is_file() and is_hf_config(read_json(root / "config.json")):
        return LocalLayout(root=root, kind="hf", steps={0: root})
    for folder in (root, root / "checkpoints"):
        layout = _state_dict_layout(root, folder)
        if layout is not None:
            return layout
    raise CheckpointError(
        f"no checkpoints in {root}: expected step<N>/ or checkpoint-<N>/ Hugging Face folders, "
        "or <name>_<N>.safetensors / .pth state dicts with a config.json"
    )


def _state_dict_layout(root: Path, folder: Path) -> LocalLayout | None:
    if not folder.is_dir():
        return None
    found: dict[str, list[tuple[int, Path]]] = {}
    for p in sorted(folder.iterdir()):
        m = STEP_FILE.match(p.name)
        if p.is_file() and m and not m.group("prefix").lower().startswith("optim"):
            found.setdefault(m.group("prefix"), []).append((int(m.group("step")), p))
    groups = {prefix: _by_step(folder, items) for prefix, items in found.items()}
    if not groups:
        return None
    if len(groups) > 1:
        raise CheckpointError(
            f"{folder}: checkpoint files with several prefixes ({', '.join(sorted(groups))}); "
            "keep one model's checkpoints per folder"
        )
    config = _find_config(root, folder)
    return LocalLayout(
        root=root, kind="state_dict", steps=next(iter(groups.values())), config=config
    )


def _by_step(folder: Path, items: list[tuple[int, Path]]) -> dict[int, Path]:
    """Checkpoints by step; two names for one step (``model_6`` and ``model_06``,
    ``step6/`` and ``checkpoint-6/``, ``.pt`` beside ``.safetensors``) are an error naming
    both, never one silently chosen."""
    steps: dict[int, Path] = {}
    for step, path in items:
        if step in steps:
            raise CheckpointError(
                f"{folder}: '{steps[step].name}' and '{path.name}' are both step {step}; "
                "keep one checkpoint per step"
            )
        steps[step] = path
    return steps


def _find_config(root: Path, folder: Path) -> Path:
    for d in (folder, root):
        if (d / "config.json").is_file():
            return d / "config.json"
        jsons = sorted(d.glob("*.json"))
        if len(jsons) == 1:
            return jsons[0]
    raise CheckpointError(
        f"{folder}: state-dict checkpoints need a config.json (TransformerLens-style: "
        "d_model, n_layers, n_heads, d_head, d_vocab, n_ctx, act_fn, attn_only ...)"
    )


def _probe(path: Path, size: int) -> str:
    """Digest of the first and last MiB: catches rewritten weights without reading GBs."""
    with open(path, "rb") as f:
        head = f.read(PROBE_BYTES)
        tail = b""
        if size > PROBE_BYTES:
            f.seek(max(PROBE_BYTES, size - PROBE_BYTES))
            tail = f.read(PROBE_BYTES)
    return bytes_digest(head + tail)


def file_fingerprint(path: Path) -> list:
    st = path.stat()
    probe = _probe(path, st.st_size) if path.suffix in WEIGHT_SUFFIXES else None
    return [path.name, st.st_size, st.st_mtime_ns, probe]


def step_identity(layout: LocalLayout, step: int) -> str:
    """Content identity of one local checkpoint: resolved path, sizes, mtimes and a probe
    hash of each weight file's first/last MiB (never reads whole multi-GB files)."""
    target = layout.steps[step]
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    if layout.config is not None:
        files.append(layout.config)
    return content_key("path", str(target), [file_fingerprint(p) for p in files])
