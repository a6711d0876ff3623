"""The spec entry of a model source that has no entry class of its own: ``source: name``
(a registered name or ``module:Class``) with its ``options``, which the source checks
against its ``options_type``. Last in the spec's ``models:`` union."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mispec.spec.model_entry import ModelSpecBase


class PluginModelSpec(ModelSpecBase):
    """``source:`` a model source from a plugin (a registered name or ``module:Class``) with
    its own ``options``, which the source itself checks."""

    source_key = "source"
    source_key_hint = "'source' naming a plugin's model source"

    source: str = Field(
        description="a model source from a plugin: a registered name (`mispec list sources`) or module:Class"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="the plugin source's own options"
    )

    def source_name(self) -> str:
        return self.source
