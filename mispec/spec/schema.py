"""The spec language: strict, frozen pydantic models (``extra="forbid"``), format version 1.

A spec (:class:`Spec`) declares models (trained by mispec, a local folder, a pretrained
family, or a plugin's source; one entry class per source, registered by the sources:
``mispec.spec.model_entry``), their checkpoints and seeds (``selectors``, ``train``), prompt
sets and a DAG of metrics (``metrics``). Structural rules live in these modules, which import
nothing of mispec above its ground floor; rules that need registries or cross-references live
in ``mispec.validation.checks``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from mispec.spec.claims import ClaimSpec
from mispec.spec.fields import CachePolicy, Name, Strict
from mispec.spec.metrics import MetricSpec, PromptSpec
from mispec.spec.model_entry import MODEL_ENTRIES, ModelEntry


class Spec(Strict):
    # A study (no docstring: it would be the JSON Schema's description). Built at first use,
    # when the sources have registered their entry classes.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    mispec: Literal[1] = Field(description="spec format version; this is version 1")
    name: Name = Field(description="name of the study; the run folder is runs/<name>/")
    description: str = Field(default="", description="what the study is about (free text)")
    include: list[str] = Field(
        default_factory=list,
        description="other spec files whose models, prompts and metrics this one extends",
    )
    models: Annotated[dict[Name, ModelEntry], Field(min_length=1)] = Field(
        description="the models to measure, by name: train, pretrained, path or a plugin source each"
    )
    prompts: dict[Name, PromptSpec] = Field(
        default_factory=dict, description="prompt sets, by name"
    )
    metrics: Annotated[dict[Name, MetricSpec], Field(min_length=1)] = Field(
        description="the metric DAG, by name: each a variable of the results"
    )
    cache: dict[str, CachePolicy] = Field(
        default_factory=dict,
        description="activation cache policy per hook name: store, float16 or skip",
    )  # hook name -> policy
    claims: dict[Name, ClaimSpec] = Field(
        default_factory=dict,
        description="what the study claims about its results, checked at the end of every run",
    )

    @model_serializer(mode="wrap")
    def _without_absent_claims(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A spec without ``claims`` dumps as before the key existed (``spec_hash``)."""
        data: dict[str, Any] = handler(self)
        if not data.get("claims"):
            data.pop("claims", None)
        return data


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a spec file, for editors (yaml-language-server)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://mispec.dev/schema/v1.json"
    schema["title"] = "mispec study spec (format 1)"
    return schema


def _rebuild_spec() -> None:
    """A model entry class registered after the ``Spec`` model was built joins its union."""
    if Spec.__pydantic_complete__:
        Spec.model_rebuild(force=True)


MODEL_ENTRIES.on_change(_rebuild_spec)
