"""A model source is one module and its registration: a source defined here, with an entry
class of its own (``listed: [0, 5, 10]``), joins the spec's ``models:`` union, validates its
entries and reports their errors at ``file:line:col``, as a built-in does. And the schema
floor (``mispec.spec``) imports nothing of mispec above the ground floor."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

import mispec
from mispec.errors import SpecError
from mispec.hashing import content_key
from mispec.models.info import ModelInfo
from mispec.sources import CheckpointHandle, ModelSource, register_source, source_for
from mispec.spec.model_entry import MODEL_ENTRIES, ModelSpecBase
from mispec.spec.schema import Spec
from tests.helpers.import_graph import imports, room

REPO = Path(__file__).resolve().parents[2]
GROUND = {"mispec", "errors", "hashing", "coords", "lazy", "registry", "code_identity", "runtime"}


class ListedEntry(ModelSpecBase):
    """``listed:`` the steps of a model whose checkpoints the entry lists itself."""

    source_key = "listed"

    listed: list[int] = Field(description="the steps that exist")
    width: int = Field(default=16, description="d_model of the model")


class ListedSource(ModelSource):
    """Steps from the entry; nothing to load (validation never opens a checkpoint)."""

    kind = "listed"
    entry_type = ListedEntry
    entry: ListedEntry

    def available_steps(self, seed: int) -> list[int]:
        return sorted(self.entry.listed)

    def checkpoint_identity(self, seed: int, step: int) -> str:
        return content_key("listed", self.entry.width, seed, step)

    def source_identity(self) -> str:
        return content_key("listed", self.entry.width)

    def info(self) -> ModelInfo:
        w = self.entry.width
        return ModelInfo(
            name=self.name, n_layers=1, n_heads=2, d_model=w, d_head=w // 2, d_vocab=16, n_ctx=16
        )

    def open(
        self, seed: int, store_dir: Path, *, device: str = "cpu", dtype: str = "float32"
    ) -> CheckpointHandle:
        raise NotImplementedError


SPEC = """\
mispec: 1
name: listed
models:
  m:
    {entry}
    seeds: [0, 1]
prompts:
  rep:
    generator: repeated_tokens
    args: {{n: 4, vocab: 16, half_len: 5}}
metrics:
  loss: {{fn: loss, prompts: rep}}
"""


@pytest.fixture
def listed(monkeypatch):
    """``ListedSource`` registered, with its entry class in the ``models:`` union for this
    test only (the union, and the JSON Schema other tests compare, are restored after)."""
    monkeypatch.setattr(MODEL_ENTRIES, "_classes", dict(MODEL_ENTRIES._classes))
    register_source(ListedSource)
    yield ListedSource
    monkeypatch.undo()
    Spec.model_rebuild(force=True)
    assert [c.__name__ for c in MODEL_ENTRIES.classes()][-1] == "PluginModelSpec"


def test_the_builtin_entries_make_the_union_in_order():
    names = [c.__name__ for c in MODEL_ENTRIES.classes()]
    assert names == [
        "TrainedModelSpec",
        "PretrainedModelSpec",
        "LocalFolderModelSpec",
        "PluginModelSpec",
    ]
    assert [c.source_key for c in MODEL_ENTRIES.classes()] == [
        "train",
        "pretrained",
        "path",
        "source",
    ]


def test_a_source_with_its_own_entry_validates_it(listed, write_spec):
    loaded = mispec.load_spec(write_spec(SPEC.format(entry="listed: [10, 0, 5]\n    width: 8")))
    entry = loaded.spec.models["m"]
    assert type(entry) is ListedEntry
    assert entry.listed == [10, 0, 5] and entry.width == 8 and entry.seeds == [0, 1]
    assert entry.source_name() == "listed"
    source = source_for("m", entry, loaded.base_dir)
    assert isinstance(source, ListedSource) and source.available_steps(0) == [0, 5, 10]
    assert source.info().d_head == 4
    # a source added after the first ones dumps its own keys only (no other source's key)
    dumped = loaded.spec.model_dump(mode="json")["models"]["m"]
    assert dumped == {
        "seeds": [0, 1],
        "checkpoints": None,
        "dtype": "float32",
        "device": "auto",
        "tokenizer": None,
        "listed": [10, 0, 5],
        "width": 8,
    }


def test_its_unknown_key_and_bad_values_are_located(listed, write_spec):
    typo = write_spec(SPEC.format(entry="listed: [0, 5]\n    widht: 8"))
    with pytest.raises(SpecError) as err:
        mispec.load_spec(typo)
    [problem] = err.value.problems
    assert (problem.key_path, problem.line, problem.col) == ("models.m.widht", 6, 5)
    assert problem.message == "unknown key 'widht' (did you mean 'width'?)"

    bad = write_spec(SPEC.format(entry='listed: [0, "5"]'))
    with pytest.raises(SpecError) as err:
        mispec.load_spec(bad)
    [problem] = err.value.problems
    assert (problem.key_path, problem.line) == ("models.m.listed[1]", 5)
    assert problem.message.startswith("Input should be a valid integer")

    steps = write_spec(SPEC.format(entry="listed: [0, 5]\n    checkpoints: {steps: [7]}"))
    with pytest.raises(SpecError, match=r"spec.yaml:6:\d+: models.m.checkpoints: step 7 is not"):
        mispec.load_spec(steps)


def test_the_one_source_error_names_the_new_key(listed, write_spec):
    both = write_spec(SPEC.format(entry="listed: [0]\n    path: here"))
    with pytest.raises(SpecError) as err:
        mispec.load_spec(both)
    [problem] = err.value.problems
    assert (problem.key_path, problem.line, problem.col) == ("models.m", 4, 3)
    assert problem.message == (
        "a model needs exactly one source: 'train', 'pretrained', 'path' or 'listed', or "
        "'source' naming a plugin's model source (got path, listed)"
    )


def test_the_spec_floor_imports_nothing_above_the_ground():
    found = [i for i in imports(REPO) if room(i.importer) == "spec"]
    assert len(found) > 10  # the walk sees the spec's own imports
    above = [
        f"{i.importer} -> {i.imported} ({i.path.name}:{i.line})"
        for i in found
        if room(i.imported) not in GROUND | {"spec"}
    ]
    assert above == []
