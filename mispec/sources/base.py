"""``ModelSource``: everything mispec asks about where one spec model's checkpoints come from.

One subclass per source answers, for one model entry of a spec, every question the planner,
validation and executors have — none of them branches on the kind of source:

* planning (cheap: directory listings and file fingerprints, never weights, never torch):
  :meth:`~ModelSource.available_steps`, :meth:`~ModelSource.checkpoint_identity` (what a
  checkpoint's cache keys hash), :meth:`~ModelSource.source_identity`,
  :meth:`~ModelSource.info` (architecture facts), :meth:`~ModelSource.tokens_per_step`;
* preparation: :meth:`~ModelSource.training_identity`, :meth:`~ModelSource.pending_training`
  and :meth:`~ModelSource.prepare` (train what is missing; nothing for most sources);
* loading: :meth:`~ModelSource.open` → a :class:`CheckpointHandle` whose ``load(step)``
  gives that checkpoint's TransformerBridge;
* validation: :meth:`~ModelSource.check` (and :meth:`~ModelSource.check_built`, run once
  every other check of the spec passed), each problem at the entry's ``file:line:col``.

``SOURCES`` maps a source's name to its class: the built-in ``train``, ``pretrained`` and
``path`` (one module each beside this one), plugins through the ``mispec.sources``
entry-point group, or ``source: module:Class`` in a spec. Each source reads its own entry
class (``entry_type``, the pydantic model of its spec entry): :func:`register_source` adds a
source and its entry class, which joins the spec's ``models:`` union under its own key. A
source without one reads a :class:`PluginModelSpec` (``source: name`` with ``options``,
checked against the class's ``options_type``).
Sources travel inside a plan (pickled to Dask workers), so they hold only plain data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ValidationError

from mispec.errors import CheckpointError, Problem
from mispec.registry import Registry, subclass_of
from mispec.sources.plugin_entry import PluginModelSpec
from mispec.spec.model_entry import MODEL_ENTRIES, ModelSpecBase
from mispec.spec.selectors import Selector

if TYPE_CHECKING:
    from mispec.models.info import ModelInfo
    from mispec.models.init_weights import Start
    from mispec.spec.train import TrainSpec
    from mispec.spec.yaml_source import KeyPath, SourceMap


class CheckpointHandle(Protocol):
    """An opened (model, seed): ``load(step)`` → that checkpoint's bridge (the previous one
    must not be used after the next ``load``); ``close()`` frees it."""

    @property
    def tokenizer(self) -> Any | None: ...

    def load(self, step: int) -> Any: ...

    def close(self) -> None: ...


def resolve_path(path: str, base_dir: Path) -> Path:
    """``path`` (``~`` expanded) against the spec's folder, unless it is absolute."""
    p = Path(path).expanduser()
    return (p if p.is_absolute() else Path(base_dir) / p).resolve()


class ModelSource(ABC):
    """One model entry of a spec (``name``, its ``entry``, the spec's folder ``base_dir``)."""

    kind: ClassVar[str]  # the results' ``source`` attribute: "train", "pretrained", "path"...
    entry_type: ClassVar[type[ModelSpecBase]] = PluginModelSpec  # the spec entry it reads
    options_type: ClassVar[type[BaseModel] | None] = None  # a plugin's ``options:`` schema

    def __init__(self, name: str, entry: ModelSpecBase, base_dir: Path):
        self.name, self.entry, self.base_dir = name, entry, Path(base_dir)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    # ------------------------------------------------------------------ relations
    def bind(self, sources: dict[str, ModelSource]) -> None:
        """Called once every model entry of the spec has its source (``sources``, by name,
        this one included): a source that starts from another model's checkpoints keeps them
        (``train:`` with ``init_from``). Default: nothing."""
        return None

    def depends_on(self, seed: int) -> list[tuple[str, int]]:
        """The (model, seed) runs whose checkpoints this seed's run is built from: their
        training comes first (the planner's edges). Default: none."""
        return []

    # ------------------------------------------------------------------ planning
    def default_selector(self) -> Selector:
        """The checkpoints to read when the spec names none."""
        return "all"

    def selector(self) -> Selector:
        return (
            self.entry.checkpoints
            if self.entry.checkpoints is not None
            else self.default_selector()
        )

    @abstractmethod
    def available_steps(self, seed: int) -> list[int]:
        """Every step that exists for this seed, sorted (``CheckpointError`` if none)."""

    @abstractmethod
    def checkpoint_identity(self, seed: int, step: int) -> str:
        """A cheap content identity of one checkpoint, for cache keys."""

    @abstractmethod
    def source_identity(self) -> str:
        """What identifies the source and its tokenizer (prompt sets read from files hash it)."""

    @abstractmethod
    def info(self) -> ModelInfo:
        """Architecture facts without loading weights (the first seed's, for ``{seed}``)."""

    def validation_info(self) -> ModelInfo | None:
        """``info()`` if validation may read it (local files only), else ``None``."""
        try:
            return self.info()
        except Exception:  # an unreadable config: the run reports it
            return None

    def tokens_per_step(self) -> int | None:
        """Tokens seen per training step, where known (a ``tokens_seen`` coordinate)."""
        return None

    # ------------------------------------------------------------------ preparation
    def training_identity(self, seed: int) -> str | None:
        """The identity of the training run behind this seed (``None``: nothing to train)."""
        return None

    def training_steps_left(
        self, seed: int, steps: list[int], store_dir: Path | None
    ) -> int | None:
        """Optimizer updates still to run before every one of ``steps`` is saved in the store
        (``None``: nothing to do; ``store_dir`` ``None``: nothing is saved yet)."""
        return None

    def pending_training(self, seed: int, steps: list[int], store_dir: Path) -> bool:
        """Does :meth:`prepare` still need to run before ``steps`` can be opened?"""
        return self.training_steps_left(seed, steps, store_dir) is not None

    def prepare(
        self, seed: int, steps: list[int], store_dir: Path, *, progress: bool = True
    ) -> int:
        """Make ``steps`` loadable (train what is missing); the number of steps trained."""
        return 0

    def take_steps_trained_on_load(self, seed: int) -> int:
        """Optimizer updates run while opening checkpoints of ``seed`` (a corrupt checkpoint
        trained again on load) since the last call: the run counts them as training."""
        return 0

    def train_spec(self) -> TrainSpec | None:
        """The ``train:`` block mispec trains this model from (None: its checkpoints exist
        already): another model starting from it checks shapes and optimizer against it."""
        return None

    # ------------------------------------------------------------------ loading
    @abstractmethod
    def open(
        self, seed: int, store_dir: Path, *, device: str = "cpu", dtype: str = "float32"
    ) -> CheckpointHandle:
        """The (model, seed) ready to ``load(step)``; weights are read per step."""

    def checkpoint_weights(
        self, seed: int, step: int, store_dir: Path, *, optimizer: bool = False
    ) -> Start:
        """One checkpoint's weights (bridge keys) for another model to start from, with the
        steps trained to provide them; its optimizer state when asked, where the source has
        one (default: the loaded bridge's weights, no optimizer state)."""
        from mispec.models.init_weights import Start

        handle = self.open(seed, store_dir)
        try:
            bridge = handle.load(step)
            weights = {k: v.detach().to("cpu").clone() for k, v in bridge.state_dict().items()}
        finally:
            handle.close()
        return Start(weights, None, 0)

    def tokenizer_loader(self) -> Callable[[], Any] | None:
        """The spec's ``tokenizer:`` folder (it wins over the source's own), if any."""
        if self.entry.tokenizer is None:
            return None
        from mispec.models import hf

        folder = resolve_path(self.entry.tokenizer, self.base_dir)
        return lambda: hf.local_tokenizer(folder)

    def has_tokenizer(self) -> bool | None:
        """Whether text prompts can be tokenized for this model, known before loading it:
        True with a spec ``tokenizer:``, else what ``own_tokenizer`` knows."""
        return True if self.entry.tokenizer is not None else self.own_tokenizer()

    def local_tokenizer_folder(self) -> Path | None:
        """A tokenizer folder on local disk that validation may load (text prompt sets are
        then tokenized at ``validate``): the spec's ``tokenizer:``, else what the source keeps
        beside its checkpoints (``own_tokenizer_folder``); None: only the run can tell."""
        if self.entry.tokenizer is not None:
            from mispec.models.local import has_tokenizer

            folder = resolve_path(self.entry.tokenizer, self.base_dir)
            return folder if folder.is_dir() and has_tokenizer(folder) else None
        return self.own_tokenizer_folder()

    def own_tokenizer_folder(self) -> Path | None:
        """The local folder of the source's own tokenizer, where it has one (default: None)."""
        return None

    def own_tokenizer(self) -> bool | None:
        """Whether the source brings its own tokenizer: None when only loading tells (the
        default); a source that knows overrides it (a trained toy model has none)."""
        return None

    # ------------------------------------------------------------------ validation
    def problem(
        self, source_map: SourceMap, keys: KeyPath, message: str, *, at_key: bool = False
    ) -> Problem:
        """A problem at ``models.<name>.<keys>`` in the spec file."""
        return source_map.problem(("models", self.name, *keys), message, at_key=at_key)

    def check(self, source_map: SourceMap) -> list[Problem]:
        """Everything about this entry that validation can check without building anything:
        by default its ``options``, then its selector against the steps, and its tokenizer."""
        problems = self.check_options(source_map)
        if not problems:
            problems += self.check_selector(source_map)
        return problems + self.check_tokenizer(source_map)

    def check_built(self, source_map: SourceMap) -> list[Problem]:
        """Checks that build things (a training config), run when the spec is otherwise valid."""
        return []

    @property
    def options(self) -> BaseModel:
        """The entry's ``options`` parsed with ``options_type`` (``check`` reports errors)."""
        assert isinstance(self.entry, PluginModelSpec) and self.options_type is not None
        return self.options_type.model_validate(self.entry.options)

    def check_options(self, source_map: SourceMap) -> list[Problem]:
        if not isinstance(self.entry, PluginModelSpec):
            return []
        if self.options_type is None:
            if not self.entry.options:
                return []
            message = f"model source '{self.entry.source}' takes no options"
            return [self.problem(source_map, ("options",), message, at_key=True)]
        try:
            self.options_type.model_validate(self.entry.options)
        except ValidationError as exc:
            return [
                self.problem(source_map, ("options", *err["loc"]), err["msg"])
                for err in exc.errors(include_url=False)
            ]
        return []

    def check_selector(self, source_map: SourceMap) -> list[Problem]:
        """The selector picks steps that exist (the first seed's)."""
        from mispec.spec.selectors import resolve_selector

        try:
            available = self.available_steps(self.entry.seeds[0])
            resolve_selector(self.selector(), available, where=f"models.{self.name}.checkpoints")
        except CheckpointError as exc:
            return [self.problem(source_map, ("checkpoints",), str(exc).split(": ", 1)[-1])]
        return []

    def check_tokenizer(self, source_map: SourceMap) -> list[Problem]:
        if self.entry.tokenizer is None:
            return []
        folder = resolve_path(self.entry.tokenizer, self.base_dir)
        if folder.is_dir():
            return []
        return [self.problem(source_map, ("tokenizer",), f"tokenizer folder not found: {folder}")]


SOURCES: Registry[type[ModelSource]] = Registry(
    "model source",
    entry_point_group="mispec.sources",
    accepts=subclass_of(ModelSource),
    wrong_kind="'{name}' is not a mispec model source: subclass mispec.sources.ModelSource",
)


def register_source(cls: type[ModelSource], name: str | None = None) -> type[ModelSource]:
    """Register ``cls`` as the model source ``name`` (default: its ``kind``) and its entry
    class, unless that is the plugin entry, as a member of the spec's ``models:`` union."""
    SOURCES.register(name or cls.kind, cls)
    if cls.entry_type is not PluginModelSpec:
        MODEL_ENTRIES.register(cls.entry_type)
    return cls
