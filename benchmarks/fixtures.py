"""The two benchmark scales, their specs, their checkpoints and their prompts.

* scale (a) ``toy``: the 2-layer attention-only toy (d_model 64, 4 heads, vocab 64, half_len
  24) trained by mispec itself. Training is done ONCE, before any timing, into a shared
  checkpoint store (``<work>/toy-train/checkpoints``); every cold mispec run gets a fresh,
  empty store whose ``checkpoints/`` is a symlink to it, so a cold run trains nothing but
  has no activation or cell cached. Naive and floor read the very same safetensors files.
* scale (b) ``neox``: a Pythia-70m-shaped GPT-NeoX (6 layers, d_model 512, 8 heads, d_mlp
  2048, vocab 50304, rotary 0.25, untied unembedding) with random weights perturbed per step,
  saved as Hugging Face ``step<N>/`` folders (``tests/helpers/tiny_neox.py``) and read by all
  three contenders; mispec reads them as a ``path:`` model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import REPO

TOY_TRAIN = {
    "task": "repeated_tokens",
    "task_args": {"vocab": 64, "half_len": 24},
    "arch": {
        "n_layers": 2,
        "n_heads": 4,
        "d_model": 64,
        "d_head": 16,
        "attn_only": True,
        "normalization": "LN",
    },
    "batch_size": 64,
    "optimizer": {"name": "adamw", "lr": 1.0e-3, "weight_decay": 0.01},
}
NEOX_ARCH = {"n_layers": 6, "d_model": 512, "n_heads": 8, "vocab_size": 50304, "n_ctx": 2048}
NEOX_STEPS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)

METRICS = """\
metrics:
  loss:           {fn: loss, prompts: repeats, args: {mask: none}}
  per_token_loss: {fn: per_token_loss, prompts: repeats, args: {mask: none}}
  induction:      {fn: induction_score, prompts: repeats%s}
  prev_token:     {fn: previous_token_score, prompts: repeats}
"""
# The "one metric's arguments changed" edit: induction now excludes BOS (its hook is cached).
CHANGED_ARGS = ", args: {exclude_bos: true}"


@dataclass(frozen=True)
class Scale:
    key: str  # "toy" | "neox"
    title: str
    model: str  # model name in the spec
    steps: tuple[int, ...]  # the checkpoints every contender measures
    n_prompts: int
    vocab: int
    half_len: int
    prompt_seed: int = 123
    repeats: int = 1  # timing repetitions (median)

    @property
    def seq_len(self) -> int:
        return 1 + 2 * self.half_len

    def prompt_block(self) -> str:
        return (
            "prompts:\n  repeats:\n    generator: repeated_tokens\n"
            f"    args: {{n: {self.n_prompts}, vocab: {self.vocab}, half_len: {self.half_len}}}\n"
            f"    seed: {self.prompt_seed}\n"
        )

    def tokens(self) -> Any:
        """The prompt tokens, from mispec's own generator (identical for every contender)."""
        import torch

        from mispec.tasks import make_task

        task = make_task("repeated_tokens", {"vocab": self.vocab, "half_len": self.half_len})
        ps = task.prompt_set(self.n_prompts, self.prompt_seed)
        return torch.as_tensor(ps.tokens, dtype=torch.long)


def toy_scale(n_ckpts: int, repeats: int) -> Scale:
    every = 10
    return Scale(
        "toy",
        f"(a) 2-layer attn-only toy, {n_ckpts} checkpoints, 32 × 49 tokens",
        "toy2l",
        tuple(range(0, every * n_ckpts, every)),
        32,
        64,
        24,
        repeats=repeats,
    )


def neox_scale(n_ckpts: int, n_prompts: int, repeats: int) -> Scale:
    return Scale(
        "neox",
        f"(b) Pythia-70m-shaped GPT-NeoX, {n_ckpts} checkpoints, {n_prompts} × 127 tokens",
        "pythia_like",
        NEOX_STEPS[:n_ckpts],
        n_prompts,
        NEOX_ARCH["vocab_size"],
        63,
        repeats=repeats,
    )


# ---------------------------------------------------------------------------------- specs
def toy_spec_text(scale: Scale, name: str, *, changed: bool = False) -> str:
    steps = scale.steps
    every = steps[1] - steps[0] if len(steps) > 1 else 1
    train = dict(TOY_TRAIN, steps=max(steps[-1], 1))
    return (
        f"mispec: 1\nname: {name}\n"
        f"models:\n  {scale.model}:\n    train: {json.dumps(train)}\n"
        f"    checkpoints: {{start: 0, stop: {steps[-1]}, every: {every}}}\n"
        + scale.prompt_block()
        + METRICS % (CHANGED_ARGS if changed else "")
    )


def neox_spec_text(scale: Scale, root: Path, name: str, *, changed: bool = False) -> str:
    return (
        f"mispec: 1\nname: {name}\n"
        f"models:\n  {scale.model}:\n    path: {json.dumps(str(Path(root).resolve()))}\n"
        f"    checkpoints: {{steps: {list(scale.steps)}}}\n"
        + scale.prompt_block()
        + METRICS % (CHANGED_ARGS if changed else "")
    )


# The base spec without an activation cache: what mispec's cold run costs when it persists
# only the metric cells (the cache is what makes the changed-metric run free).
NO_CACHE = "cache:\n  blocks.{layer}.attn.hook_pattern: skip\n  next_logprob: skip\n"


def write_specs(scale: Scale, work: Path, neox_root: Path | None = None) -> dict[str, Path]:
    """``base``, ``changed`` and ``nocache`` spec files for a scale."""
    folder = work / "specs"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for variant, changed in (("base", False), ("changed", True), ("nocache", False)):
        name = f"bench-{scale.key}-{len(scale.steps)}"
        text = (
            toy_spec_text(scale, name, changed=changed)
            if scale.key == "toy"
            else neox_spec_text(scale, neox_root, name, changed=changed)  # type: ignore[arg-type]
        )
        if variant == "nocache":
            text += NO_CACHE
        path = folder / f"{name}-{variant}.yaml"
        path.write_text(text, encoding="utf-8")
        out[variant] = path
    return out


# ---------------------------------------------------------------------------- checkpoints
def toy_checkpoints(scale: Scale, spec_path: Path, shared_store: Path) -> dict[str, Any]:
    """Train the toy (once; resumable) into ``shared_store``; return its config and files."""
    import mispec
    from mispec import models as sources

    loaded = mispec.load_spec(spec_path)
    train = loaded.spec.models[scale.model].train
    report = sources.ensure_trained(
        scale.model, train, 0, list(scale.steps), shared_store, progress=False
    )
    from mispec.models.checkpoint_layout import MODEL_FILE
    from mispec.models.runs import run_dir

    folder = run_dir(train, 0, shared_store)
    config = json.loads((folder / "config.json").read_text())
    files = {s: folder / MODEL_FILE.format(step=s) for s in scale.steps}
    missing = [s for s, f in files.items() if not f.is_file()]
    if missing:
        raise RuntimeError(f"toy checkpoints missing after training: {missing[:5]}")
    return {"tl_config": config["tl_config"], "files": files, "trained": report.steps_trained}


def neox_checkpoints(scale: Scale, root: Path) -> dict[int, Path]:
    """Build the missing ``step<N>/`` HF folders under ``root`` (deterministic, kept)."""
    import sys

    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.helpers.tiny_neox import build_checkpoint_folder

    stamp = root / "bench-config.json"
    want = json.dumps(NEOX_ARCH, sort_keys=True)
    if stamp.is_file() and stamp.read_text() != want:
        import shutil

        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(want)
    todo = [s for s in scale.steps if not (root / f"step{s}" / "model.safetensors").is_file()]
    if todo:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        build_checkpoint_folder(root, todo, **NEOX_ARCH)
    return {s: root / f"step{s}" for s in scale.steps}


def cold_store(store: Path, shared_store: Path | None) -> Path:
    """A fresh, empty store; for the toy its ``checkpoints/`` points at the pre-trained ones."""
    from benchmarks.common import fresh_dir

    fresh_dir(store)
    if shared_store is not None:
        (store / "checkpoints").symlink_to((shared_store / "checkpoints").resolve())
    return store
