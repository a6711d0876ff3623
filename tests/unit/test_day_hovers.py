"""Hovers in the editor, through the real npm yaml-language-server: over ``fn:`` the chosen
metric alone (not every metric: that popup was 15.8 KB), over an argument what it means,
read from the ``Args:`` section of the metric's docstring."""

from __future__ import annotations

import json
from pathlib import Path

from mispec.catalogue.editor_schema import editor_schema
from mispec.catalogue.records import arg_docs

SPEC = """\
# yaml-language-server: $schema={schema}
mispec: 1
name: hovers
models:
  toy: {{pretrained: gpt2}}
prompts:
  rep: {{generator: repeated_tokens, args: {{n: 8, vocab: 16, half_len: 6}}}}
metrics:
  prev:
    fn: previous_token_score
    prompts: rep
    args: {{normalize: all_rows}}
  typo: {{fn: induction_scor, prompts: rep}}
"""


def test_arg_docs_reads_a_google_style_args_section():
    def f(a, b, c):
        """Summary line.

        More text: with a colon.

        Args:
            a: the first,
                continued here.
            b (int): the second.

        Returns:
            c: not an argument.
        """

    assert arg_docs(f) == {"a": "the first, continued here.", "b": "the second."}
    assert arg_docs(lambda x: x) == {}


def _hovers(tmp_path: Path, at: list[tuple[str, str]]) -> list[str]:
    from tests.helpers.lsp import LanguageClient, yaml_language_server

    schema = tmp_path / "spec.schema.json"
    schema.write_text(json.dumps(editor_schema(builtin_only=True)))
    spec = tmp_path / "study.yaml"
    text = SPEC.format(schema=schema.as_uri())
    spec.write_text(text)
    lines = text.splitlines()
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
        found = client.diagnostics(uri)  # the typo'd fn, still flagged
        assert [d["range"]["start"]["line"] for d in found] == [
            next(i for i, line in enumerate(lines) if "induction_scor" in line)
        ], found
        assert found[0]["message"].startswith(
            "no such fn: not a registered name (`mispec list metrics`"
        ), found
        out = []
        for fragment, word in at:
            row = next(i for i, line in enumerate(lines) if fragment in line)
            pos = {"line": row, "character": lines[row].index(word) + 1}
            hover = client.request(
                "textDocument/hover", {"textDocument": {"uri": uri}, "position": pos}
            )
            out.append(hover["contents"]["value"] if hover else "")
        return out
    finally:
        client.close()


def test_hover_shows_the_chosen_metric_and_what_each_arg_means(tmp_path):
    from mispec.metrics.core import METRICS, load_builtin_metrics

    load_builtin_metrics()
    meaning = arg_docs(METRICS.get("previous_token_score").fn)
    assert set(meaning) == {"normalize", "exclude_bos", "exclude_current_token"}
    md = {k: v.replace("``", "`") for k, v in meaning.items()}

    on_key, on_value, on_arg, on_typo = _hovers(
        tmp_path,
        [
            ("fn: previous_token_score", "fn"),
            ("fn: previous_token_score", "previous_token_score"),
            ("normalize: all_rows", "normalize"),
            ("fn: induction_scor", "fn"),
        ],
    )
    assert on_key == on_value
    assert "`fn: previous_token_score`: Previous-token-head score per (layer, head)" in on_key
    assert all(f"* `{name}` " in on_key and text in on_key for name, text in md.items())
    others = ("induction_score", "accuracy", "Allowed Values")
    assert not any(other in on_key for other in others), on_key
    assert len(on_key.encode()) < 1500  # one metric (it was 15,794 bytes: all 63 metrics)

    assert md["normalize"] in on_arg, on_arg  # what it means, not only its type
    assert "`normalize: Literal['target_rows', 'all_rows']`, default 'target_rows'" in on_arg

    # a name that is no metric hovers with what the key is, not with some metric's text
    assert "the metric function: a registered name" in on_typo, on_typo
    assert "Previous-token" not in on_typo and "Allowed Values" not in on_typo
