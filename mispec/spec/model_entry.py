"""A spec's model entry: what every entry has (:class:`ModelSpecBase`), and the table of entry
classes the spec's ``models:`` union is built from (:data:`MODEL_ENTRIES`).

Each model source defines its own entry class (``train:``, ``pretrained:``, ``path:``, a
plugin's ``source:``) beside the source, in ``mispec.sources``, and registers it there with
the source; nothing here names a source. An entry is told apart by the one source key it
has (:attr:`ModelSpecBase.source_key`); the ``Spec`` model's union is rebuilt when an entry
class is added, so a source registered later (a plugin, a test) validates like a built-in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    SerializerFunctionWrapHandler,
    Tag,
    model_serializer,
    model_validator,
)
from pydantic_core import CoreSchema

from mispec.spec.fields import DType, Strict
from mispec.spec.selectors import Selector


class ModelSpecBase(Strict):
    """What every model entry has, whatever its source: the ``seeds`` (one run each), the
    ``checkpoints`` to read (default: the source's), and how to load them."""

    # the key that names the source in a model entry ("train", "path", ...): one per class
    source_key: ClassVar[str]
    # how the one-source error names that key (None: the key, quoted)
    source_key_hint: ClassVar[str | None] = None

    seeds: Annotated[list[Annotated[int, Field(ge=0, le=2**31 - 1)]], Field(min_length=1)] = Field(
        default=[0], description="one training run (or checkpoint family) per seed"
    )
    checkpoints: Selector | None = Field(
        default=None,
        description="which steps to read: all, last, {steps: [...]}, {every: N}, {schedule: log, count: N} (default: the source's)",
    )  # default: the source's (log/32 for train, else all)
    dtype: DType = Field(default="float32", description="dtype to load checkpoints in")
    device: str = Field(
        default="auto", description="device to run metrics on (auto: CUDA when present)"
    )
    tokenizer: str | None = Field(
        default=None, description="a local tokenizer folder, for models that come without one"
    )  # a local tokenizer folder for models without one

    @model_validator(mode="after")
    def _distinct_seeds(self) -> ModelSpecBase:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds are repeated")
        return self

    def source_name(self) -> str:
        """The name of this entry's source in ``mispec.sources.SOURCES`` (its key's)."""
        return self.source_key


# The source keys of format 1's single model class, before each source had its own entry.
FIRST_SOURCE_KEYS = ("train", "pretrained", "path")


class FirstSourceEntry(ModelSpecBase):
    """An entry of one of the first built-in sources (``FIRST_SOURCE_KEYS``). It dumps the
    other ones' keys as ``None``, as the single model class before it did, so ``spec_hash``
    (run provenance) is unchanged; keys added since are dumped only when set. A source added
    later subclasses :class:`ModelSpecBase`."""

    # keys added after format 1 shipped: dumped only when set
    dumped_when_set: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _with_absent_sources(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self.dumped_when_set:  # an entry without them dumps as before
            if data.get(key, 0) is None:
                del data[key]
        return {**dict.fromkeys(FIRST_SOURCE_KEYS), **data}


class ModelEntries:
    """The entry classes of the ``models:`` union, in the order they were registered, each
    under its ``source_key``. Adding one tells the listeners (the ``Spec`` model rebuilds)."""

    def __init__(self) -> None:
        self._classes: dict[str, type[ModelSpecBase]] = {}
        self._listeners: list[Callable[[], None]] = []

    def register(self, entry: type[ModelSpecBase]) -> type[ModelSpecBase]:
        """Add ``entry`` under its ``source_key`` (the same class again changes nothing)."""
        key = entry.source_key
        old = self._classes.get(key)
        if old is entry:
            return entry
        if old is not None:
            raise ValueError(
                f"model entry key '{key}' is registered twice ({old.__name__}, {entry.__name__})"
            )
        self._classes[key] = entry
        for listener in self._listeners:
            listener()
        return entry

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever an entry class is added."""
        self._listeners.append(listener)

    def classes(self) -> tuple[type[ModelSpecBase], ...]:
        return tuple(self._classes.values())

    def union(self) -> Any:
        """The registered classes as a ``typing.Union`` (for what walks the spec's types)."""
        return Union[self.classes()]  # noqa: UP007 (built from a tuple at run time)

    def one_source(self, value: Any) -> Any:
        """Exactly one source key per model entry (a source key set to null counts as absent)."""
        if not isinstance(value, dict):
            return value
        keys = list(self._classes)
        value = {k: v for k, v in value.items() if not (k in keys and v is None)}
        given = [k for k in keys if k in value]
        if len(given) != 1:
            raise ValueError(
                f"a model needs exactly one source: {self._expected()}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return value

    def tag(self, value: Any) -> str | None:
        """The union member ``value`` is: its class's name, found by its source key."""
        if isinstance(value, BaseModel):
            return type(value).__name__
        if isinstance(value, dict):
            return next((c.__name__ for k, c in self._classes.items() if k in value), None)
        return None

    def _expected(self) -> str:
        """``'train', 'pretrained' or 'path', or 'source' naming a plugin's model source``."""
        plain = [f"'{c.source_key}'" for c in self.classes() if c.source_key_hint is None]
        hinted = [c.source_key_hint for c in self.classes() if c.source_key_hint is not None]
        text = " or ".join([", ".join(plain[:-1]), plain[-1]] if len(plain) > 1 else plain)
        return text + "".join(f", or {hint}" for hint in hinted)


MODEL_ENTRIES = ModelEntries()


class EntryUnion:
    """Pydantic metadata: the annotated field validates as the union of ``entries``' classes,
    told apart by their source key, as they are when the model is built."""

    def __init__(self, entries: ModelEntries) -> None:
        self.entries = entries

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        classes = self.entries.classes()
        if not classes:
            raise RuntimeError(
                "no model sources are registered: import mispec.sources before validating a "
                "spec (mispec.validation.load.load_spec does)"
            )
        entries = self.entries

        def _source_tag(value: Any) -> str | None:  # pydantic names it in an untagged error
            return entries.tag(value)

        members = tuple(Annotated[c, Tag(c.__name__)] for c in classes)
        choices: Any = Union[members]  # noqa: UP007 (built from a tuple at run time)
        union = Annotated[
            choices,
            Discriminator(_source_tag),
            BeforeValidator(self.entries.one_source),
        ]
        return handler.generate_schema(union)


ModelEntry = Annotated[ModelSpecBase, EntryUnion(MODEL_ENTRIES)]
"""A spec's model entry: one class per source, told apart by the source key it has."""
