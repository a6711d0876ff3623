"""Model sources: one class per place a model's checkpoints come from (see ``base``).

Built in: ``train`` (:class:`TrainedSource`, mispec trains it), ``pretrained``
(:class:`PretrainedSource`, a published family) and ``path`` (:class:`LocalFolderSource`, a
local folder), each one module with its source class and its entry class (the pydantic model
of its spec entry, ``train: ...``), registered below. Adding one is one module with a
:class:`ModelSource` subclass plus its registration: ``register_source(MySource)`` (with an
``entry_type`` of its own, its key joins the spec's ``models:`` union), an entry point in
the ``mispec.sources`` group, or ``source: my_module:MySource`` in a spec's model entry.

Nothing here imports torch: sources import it only when they open a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from mispec.errors import UserError
from mispec.sources.base import (
    SOURCES,
    CheckpointHandle,
    ModelSource,
    PluginModelSpec,
    register_source,
    resolve_path,
)
from mispec.sources.local_folder import LocalFolderSource
from mispec.sources.pretrained import PretrainedSource
from mispec.sources.trained import TrainedSource
from mispec.spec.model_entry import MODEL_ENTRIES, ModelSpecBase

# The built-ins, in the order of the spec's ``models:`` union; the plugin entry comes last.
for _cls in (TrainedSource, PretrainedSource, LocalFolderSource):
    register_source(_cls)
MODEL_ENTRIES.register(PluginModelSpec)


def source_class(ref: str) -> type[ModelSource]:
    """The class registered as ``ref`` (or imported from ``module:Class``)."""
    return SOURCES.get(ref)


def source_for(name: str, entry: ModelSpecBase, base_dir: Path) -> ModelSource:
    """The source of the spec's model ``name`` (its ``entry``; ``base_dir``: the spec's folder)."""
    ref = entry.source_name()
    cls = source_class(ref)
    if not isinstance(entry, cls.entry_type):
        raise UserError(
            f"model '{name}': '{ref}' is a built-in source: write `{ref}: ...` in the model "
            f"entry instead of `source: {ref}`"
        )
    return cls(name, entry, base_dir)


def sources_for(models: dict[str, ModelSpecBase], base_dir: Path) -> dict[str, ModelSource]:
    """Every model entry's source, bound to each other (see :meth:`ModelSource.bind`)."""
    sources = {name: source_for(name, entry, base_dir) for name, entry in models.items()}
    for source in sources.values():
        source.bind(sources)
    return sources


__all__ = [
    "SOURCES",
    "CheckpointHandle",
    "LocalFolderSource",
    "ModelSource",
    "PluginModelSpec",
    "PretrainedSource",
    "TrainedSource",
    "register_source",
    "resolve_path",
    "source_class",
    "source_for",
    "sources_for",
]
