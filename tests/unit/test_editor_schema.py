"""The JSON Schema editors use: every key described, registry names as enums, per-name args
checked; and what the real npm yaml-language-server (VS Code's YAML extension) makes of it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from mispec.catalogue.editor_schema import annotation_schema, editor_schema
from mispec.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def _properties(node, path="#"):
    """Every (path, property schema) of every object in the schema (not the ``if``
    conditions, which name no key of their own)."""
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            yield f"{path}.{key}", sub
        for key, sub in node.items():
            if key != "if":
                yield from _properties(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for sub in node:
            yield from _properties(sub, path)


def _messages(errors):
    """Every message, with those of the branches of a ``oneOf`` (a model entry is one)."""
    for e in errors:
        yield e.message
        yield from _messages(e.context or [])


def test_every_key_has_a_description():
    schema = editor_schema(builtin_only=True)
    props = list(_properties(schema))
    assert len(props) > 150  # spec keys, and every metric's, task's and generator's args
    missing = [path for path, sub in props if not sub.get("description")]
    assert missing == []


def test_docs_schema_is_current():
    """Fix with `make docs` (`mispec schema --builtin > docs/spec.schema.json`)."""
    page = json.loads((REPO / "docs" / "spec.schema.json").read_text())
    assert page == editor_schema(builtin_only=True), (
        "docs/spec.schema.json is stale: run `make docs`"
    )


def test_enums_and_per_name_args_catch_what_validate_catches():
    schema = editor_schema(builtin_only=True)
    validator = jsonschema.Draft202012Validator(schema)
    spec = yaml.safe_load((REPO / "specs" / "induction_heads.yaml").read_text())
    assert list(validator.iter_errors(spec)) == []  # the default study is clean

    names = {
        alt["const"]: alt["description"]
        for alt in schema["$defs"]["MetricSpec"]["properties"]["fn"]["oneOf"]
        if "const" in alt
    }
    assert names["induction_score"].startswith("Induction-head score per (layer, head)")

    def errors(mutate):
        bad = yaml.safe_load(yaml.safe_dump(spec))
        mutate(bad)
        return sorted(_messages(validator.iter_errors(bad)))

    def typo_fn(s):
        s["metrics"]["induction"]["fn"] = "induction_scor"

    def typo_arg(s):
        s["metrics"]["prev_token"]["args"] = {"normalise": "all_rows"}

    def bad_value(s):
        s["metrics"]["prev_token"]["args"] = {"normalize": "rows"}

    def missing_required(s):
        s["metrics"]["icl"]["args"] = {"early": 2}

    def typo_task(s):
        s["models"]["toy2l"]["train"]["task"] = "repeated_token"

    def typo_task_arg(s):
        s["models"]["toy2l"]["train"]["task_args"]["halflen"] = 3

    def plugin_fn(s):
        s["metrics"]["induction"]["fn"] = "my_metrics:bos_attention"

    assert errors(typo_fn) and "'induction_scor' is not valid under any of the given schemas" in (
        errors(typo_fn)
    )
    assert any("'normalise' was unexpected" in m for m in errors(typo_arg))
    assert any("'rows' is not one of" in m for m in errors(bad_value))
    assert any("'late' is a required property" in m for m in errors(missing_required))
    assert any("repeated_token" in m for m in errors(typo_task))
    assert any("'halflen' was unexpected" in m for m in errors(typo_task_arg))
    assert errors(plugin_fn) == []  # a module:function reference stays allowed


def test_annotation_schemas():
    assert annotation_schema("int | None") == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert annotation_schema("Literal['a', 'b']") == {"enum": ["a", "b"]}
    assert annotation_schema("list[str]") == {"type": "array", "items": {"type": "string"}}
    assert annotation_schema("MyType | None") == {}  # unknown: anything goes
    assert annotation_schema("not valid(") == {}


def test_schema_command_lists_installed_plugins(capsys):
    from mispec.metrics.core import METRICS, metric

    @metric(dims=(), inputs=("x",), register=False)
    def schema_probe_metric(x, gain: float = 1.0):
        """Probe metric for the schema test."""
        return x

    METRICS.register("schema_probe_metric", schema_probe_metric.__mispec__)
    try:
        assert main(["schema"]) == 0
        schema = json.loads(capsys.readouterr().out)
        fn = schema["$defs"]["MetricSpec"]["properties"]["fn"]["oneOf"]
        assert "schema_probe_metric" in [alt.get("const") for alt in fn]
        rule = next(
            r
            for r in schema["$defs"]["MetricSpec"]["allOf"]
            if r["if"]["properties"]["fn"]["const"] == "schema_probe_metric"
        )
        assert rule["then"]["properties"]["args"]["properties"]["gain"]["type"] == "number"
    finally:
        METRICS._items.pop("schema_probe_metric")


TYPO_SPEC = """\
# yaml-language-server: $schema={schema}
mispec: 1
name: typos
models:
  toy:
    train:
      task: repeated_token
      task_args: {{vocab: 16, half_len: 6}}
      arch: {{n_layers: 2, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}}
      steps: 40
      batch_sise: 16
prompts:
  rep:
    generator: repeated_tokens
    args: {{n: 8, vocab: 16, half_len: 6}}
metrics:
  induction: {{fn: induction_scor, prompts: rep}}
  prev: {{fn: previous_token_score, prompts: rep, args: {{normalise: all_rows}}}}
"""


def test_yaml_language_server_flags_the_typos_and_hovers_descriptions(tmp_path):
    """The real server over LSP, as VS Code's YAML extension runs it: a typo'd key, fn,
    task and arg each get a diagnostic on their line; hovering a key shows its description."""
    from tests.helpers.lsp import LanguageClient, yaml_language_server

    schema = tmp_path / "spec.schema.json"
    schema.write_text(json.dumps(editor_schema(builtin_only=True)))
    spec = tmp_path / "study.yaml"
    text = TYPO_SPEC.format(schema=schema.as_uri())
    spec.write_text(text)
    lines = text.splitlines()

    def line_of(fragment):
        return next(i for i, line in enumerate(lines) if fragment in line)

    settings = {"yaml": {"validate": True, "hover": True, "completion": True}}
    client = LanguageClient(yaml_language_server(), settings)
    try:
        client.request(
            "initialize",
            {
                "processId": None,
                "rootUri": tmp_path.as_uri(),
                "capabilities": {"textDocument": {"hover": {"contentFormat": ["markdown"]}}},
            },
        )
        client.notify("initialized", {})
        client.notify("workspace/didChangeConfiguration", {"settings": settings})
        uri = spec.as_uri()
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
        )
        found = client.diagnostics(uri)
        by_line: dict[int, list[str]] = {}
        for d in found:
            by_line.setdefault(d["range"]["start"]["line"], []).append(d["message"])
        assert sorted(by_line) == sorted(
            line_of(f)
            for f in ("task: repeated_token", "batch_sise", "induction_scor", "normalise")
        ), found
        assert any("batch_sise" in m and "not allowed" in m for m in by_line[line_of("batch_sise")])
        assert any("normalise" in m for m in by_line[line_of("normalise")])

        row = line_of("induction_scor")
        hover = client.request(
            "textDocument/hover",
            {
                "textDocument": {"uri": uri},
                "position": {"line": row, "character": lines[row].index("fn") + 1},
            },
        )
        assert "the metric function: a registered name" in json.dumps(hover), hover
        row = line_of("previous_token_score")
        hover = client.request(
            "textDocument/hover",
            {
                "textDocument": {"uri": uri},
                "position": {
                    "line": row,
                    "character": lines[row].index("previous_token_score") + 3,
                },
            },
        )
        assert "Previous-token-head score per (layer, head)" in json.dumps(hover), hover
    finally:
        client.close()
