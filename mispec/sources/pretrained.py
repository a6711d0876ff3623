"""``pretrained:`` — a published model family with one checkpoint per training step.

The steps are the family's published schedule (``mispec.models.schedules``: Pythia's
``step<N>`` revisions, stanford-crfm's ``checkpoint-<N>`` ones, the legacy TransformerLens
``NeelNanda/…`` checkpoint files; any other repo is one checkpoint, step 0). ``{seed}`` in
the name picks one run per seed (``EleutherAI/pythia-70m-seed{seed}``). Weights come from
the Hugging Face cache, or the hub when online (``mispec.models.hub``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from mispec.errors import CheckpointError
from mispec.hashing import content_key
from mispec.models import hub, schedules
from mispec.models.configs import info_from_config
from mispec.models.info import ModelInfo
from mispec.sources.base import CheckpointHandle, ModelSource
from mispec.spec.model_entry import FirstSourceEntry
from mispec.spec.selectors import check_step

if TYPE_CHECKING:
    from mispec.models.handle import HFBoot, NativeSwap


class PretrainedModelSpec(FirstSourceEntry):
    """``pretrained:`` a published family, one revision per step; ``{seed}`` names one run
    per seed (``EleutherAI/pythia-70m-seed{seed}``)."""

    source_key = "pretrained"

    pretrained: str = Field(
        description="a published model family with per-step revisions, e.g. EleutherAI/pythia-70m"
    )


class PretrainedSource(ModelSource):
    kind = "pretrained"
    entry_type = PretrainedModelSpec
    entry: PretrainedModelSpec

    def repo(self, seed: int) -> str:
        """The hub repo of one seed's run."""
        return self.entry.pretrained.format(seed=seed)

    # ------------------------------------------------------------------ planning
    def available_steps(self, seed: int) -> list[int]:
        name = self.repo(seed)
        steps = schedules.embedded_steps(name)
        return steps if steps is not None else hub.tl_legacy_labels(name)

    def checkpoint_identity(self, seed: int, step: int) -> str:
        name = self.repo(seed)
        if schedules.family(name) == "tl_legacy":
            return content_key(name, f"checkpoints/{step}")
        steps = schedules.embedded_steps(name) or []
        check_step(step, steps, name)
        return content_key(name, schedules.revision_for(name, step) or "main")

    def source_identity(self) -> str:
        return content_key(self.kind, self.entry.pretrained, self.entry.tokenizer)

    def info(self) -> ModelInfo:
        """The cached config, else the embedded tables, else the hub's config (when online
        or for legacy TL repos)."""
        repo = self.repo(self.entry.seeds[0])
        cfg = hub.cached_config(repo)
        if cfg is not None:
            return info_from_config(self.name, cfg)
        known = schedules.embedded_info(repo)
        if known is not None:
            return ModelInfo(name=self.name, **known)
        if schedules.family(repo) == "tl_legacy" or not hub.is_offline():
            try:
                return info_from_config(self.name, hub.hub_json(repo, "config.json"))
            except CheckpointError:
                pass
        raise CheckpointError(
            f"model '{self.name}': no config for {repo}. " + hub.fetch_hint(repo, None)
        )

    def validation_info(self) -> ModelInfo | None:
        """``None``: the config may need the hub, so prompts are checked when the run loads it."""
        return None

    def own_tokenizer_folder(self) -> Path | None:
        """The tokenizer of the first seed's repo where the HF cache already holds it (``main``
        or any cached revision; a legacy TL repo's tokenizer lives elsewhere): no network."""
        from mispec.models.local import has_tokenizer

        repo = self.repo(self.entry.seeds[0])
        if schedules.family(repo) == "tl_legacy":
            return None
        for rev in dict.fromkeys(["main", *hub.cached_revisions(repo)]):
            folder = hub.snapshot_dir(repo, rev)
            if folder is not None and has_tokenizer(folder):
                return folder
        return None

    # ------------------------------------------------------------------ loading
    def open(
        self, seed: int, store_dir: Path, *, device: str = "cpu", dtype: str = "float32"
    ) -> CheckpointHandle:
        """Legacy TL repos: the native swap route over their checkpoint files; any other:
        a fresh HF model per step at that step's revision."""
        from mispec.models.handle import ModelHandle

        info = self.info()
        own_tokenizer = self.tokenizer_loader()
        repo = self.repo(seed)
        route, tokenizer = (
            self._legacy_route(repo)
            if schedules.family(repo) == "tl_legacy"
            else self._hf_route(repo, device, dtype)
        )
        return ModelHandle(
            self.name,
            seed,
            info,
            route,
            steps=lambda: self.available_steps(seed),
            tokenizer=own_tokenizer or tokenizer,
            device=device,
            dtype=dtype,
        )

    @staticmethod
    def _legacy_route(repo: str) -> tuple[NativeSwap, Callable[[], Any] | None]:
        from mispec.models import hf, native
        from mispec.models.configs import tl_config_kwargs
        from mispec.models.handle import NativeSwap
        from mispec.models.state_dicts import read_state_dict, to_bridge_keys

        cfg_json = hub.hub_json(repo, "config.json")
        kwargs = tl_config_kwargs(cfg_json)
        cfg = native.bridge_config(kwargs)
        layout = cfg_json.get("architecture", "neel-solu-old" if "_old" in repo else "neel")
        route = NativeSwap(
            kwargs,
            lambda step: to_bridge_keys(
                read_state_dict(hub.tl_legacy_file(repo, step)), cfg, legacy_layout=layout
            ),
        )
        tok_name = cfg_json.get("tokenizer_name")
        return route, (lambda: hf.hub_tokenizer(tok_name)) if tok_name else None

    @staticmethod
    def _hf_route(repo: str, device: str, dtype: str) -> tuple[HFBoot, Callable[[], Any]]:
        from mispec.models import hf
        from mispec.models.handle import HFBoot, resolve_device

        device = resolve_device(device)
        route = HFBoot(
            repo,
            lambda step: hf.load_hf_model(
                repo, revision=schedules.revision_for(repo, step), dtype=dtype, device=device
            ),
        )
        return route, lambda: hf.hub_tokenizer(repo)
