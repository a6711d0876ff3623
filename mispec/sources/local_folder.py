"""``path:`` — a local folder of checkpoints (relative to the spec's folder).

The folder's layout (``mispec.models.local``) gives the steps: one Hugging Face folder per
step (``step<N>/``, ``checkpoint-<N>/``) or ``<name>_<N>.safetensors`` / ``.pth`` state dicts
beside a TransformerLens-style ``config.json``. A checkpoint's identity is its resolved path
with the sizes, mtimes and a probe hash of its files. ``{seed}`` in the path names one
folder per seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mispec.errors import CheckpointError, Problem
from mispec.hashing import content_key
from mispec.models.configs import info_from_hf_config, info_from_tl_config, read_json
from mispec.models.local import LocalLayout, discover, has_tokenizer, step_identity
from mispec.sources.base import CheckpointHandle, ModelSource, resolve_path
from mispec.spec.model_entry import FirstSourceEntry
from mispec.spec.selectors import check_step

if TYPE_CHECKING:
    from mispec.models.handle import HFBoot, NativeSwap
    from mispec.models.info import ModelInfo
    from mispec.spec.yaml_source import SourceMap


class LocalFolderModelSpec(FirstSourceEntry):
    """``path:`` a local folder of checkpoints (relative to the spec); ``{seed}`` names one
    folder per seed."""

    source_key = "path"

    path: str = Field(
        description="a local folder of checkpoints (step<N>/, checkpoint-<N>/ or *_<N>.safetensors)"
    )


class LocalFolderSource(ModelSource):
    kind = "path"
    entry_type = LocalFolderModelSpec
    entry: LocalFolderModelSpec

    def root(self, seed: int) -> Path:
        """One seed's folder, resolved against the spec's folder."""
        return resolve_path(self.entry.path.format(seed=seed), self.base_dir)

    def layout(self, seed: int) -> LocalLayout:
        """What the folder holds (a directory listing; ``CheckpointError`` if nothing)."""
        return discover(self.root(seed))

    # ------------------------------------------------------------------ planning
    def available_steps(self, seed: int) -> list[int]:
        return self.layout(seed).sorted_steps

    def checkpoint_identity(self, seed: int, step: int) -> str:
        layout = self.layout(seed)
        check_step(step, layout.sorted_steps, str(layout.root))
        return step_identity(layout, step)

    def source_identity(self) -> str:
        return content_key(self.kind, self.entry.path, self.entry.tokenizer)

    def info(self) -> ModelInfo:
        """From the first step's HF ``config.json``, or the state dicts' TL-style config."""
        layout = self.layout(self.entry.seeds[0])
        if layout.kind == "hf":
            first = layout.steps[layout.sorted_steps[0]]
            return info_from_hf_config(self.name, read_json(first / "config.json"))
        assert layout.config is not None
        return info_from_tl_config(self.name, read_json(layout.config))

    def own_tokenizer(self) -> bool | None:
        """A tokenizer saved beside the first seed's checkpoints (in the root, or in the first
        step's folder of an HF layout), as ``open`` finds it."""
        try:
            layout = self.layout(self.entry.seeds[0])
        except (CheckpointError, OSError, ValueError):
            return None  # reported by ``check_folders``
        folders = [layout.root]
        if layout.kind == "hf":
            folders.insert(0, layout.steps[layout.sorted_steps[0]])
        return any(has_tokenizer(d) for d in folders)

    def own_tokenizer_folder(self) -> Path | None:
        """The folder ``open`` takes the tokenizer from (first step's folder, then the root)."""
        try:
            layout = self.layout(self.entry.seeds[0])
        except (CheckpointError, OSError, ValueError):
            return None
        folders = [layout.root]
        if layout.kind == "hf":
            folders.insert(0, layout.steps[layout.sorted_steps[0]])
        return next((d for d in folders if has_tokenizer(d)), None)

    # ------------------------------------------------------------------ loading
    def open(
        self, seed: int, store_dir: Path, *, device: str = "cpu", dtype: str = "float32"
    ) -> CheckpointHandle:
        """HF folders: a fresh HF model per step; state dicts: the native swap route. A
        tokenizer saved beside the checkpoints is used unless the spec names one."""
        from mispec.models.handle import ModelHandle

        info = self.info()
        layout = self.layout(seed)
        route, tokenizer = (
            self._hf_route(layout, device, dtype)
            if layout.kind == "hf"
            else self._native_route(layout)
        )
        return ModelHandle(
            self.name,
            seed,
            info,
            route,
            steps=layout.sorted_steps,
            tokenizer=self.tokenizer_loader() or tokenizer,
            device=device,
            dtype=dtype,
        )

    @staticmethod
    def _hf_route(
        layout: LocalLayout, device: str, dtype: str
    ) -> tuple[HFBoot, Callable[[], Any] | None]:
        from mispec.models import hf
        from mispec.models.handle import HFBoot, resolve_device

        folders, device = layout.steps, resolve_device(device)
        route = HFBoot(
            str(layout.root),
            lambda step: hf.load_hf_model(folders[step], dtype=dtype, device=device),
        )
        for d in [folders[layout.sorted_steps[0]], layout.root]:
            if has_tokenizer(d):
                return route, lambda d=d: hf.local_tokenizer(d)
        return route, None

    @staticmethod
    def _native_route(layout: LocalLayout) -> tuple[NativeSwap, Callable[[], Any] | None]:
        from mispec.models import hf, native
        from mispec.models.configs import tl_config_kwargs
        from mispec.models.handle import NativeSwap
        from mispec.models.state_dicts import read_state_dict, to_bridge_keys

        assert layout.config is not None
        kwargs = tl_config_kwargs(read_json(layout.config))
        cfg = native.bridge_config(kwargs)
        files = layout.steps
        route = NativeSwap(kwargs, lambda step: to_bridge_keys(read_state_dict(files[step]), cfg))
        tokenizer = (
            (lambda: hf.local_tokenizer(layout.root)) if has_tokenizer(layout.root) else None
        )
        return route, tokenizer

    # ------------------------------------------------------------------ validation
    def check(self, source_map: SourceMap) -> list[Problem]:
        """Each seed's folder holds checkpoints, then the selector picks steps that exist
        there; the tokenizer folder exists."""
        problems = self.check_folders(source_map) or self.check_selector(source_map)
        return problems + self.check_tokenizer(source_map)

    def check_folders(self, source_map: SourceMap) -> list[Problem]:
        for seed in self.entry.seeds:
            root = self.root(seed)
            try:
                self.layout(seed)
            except CheckpointError as exc:
                message = str(exc)
                if str(root) not in message:
                    message += f" (in {root})"
                return [self.problem(source_map, ("path",), message)]
            except (OSError, ValueError) as exc:  # an unreadable folder or config.json
                return [self.problem(source_map, ("path",), f"cannot read {root}: {exc}")]
        return []
