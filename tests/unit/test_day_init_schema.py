"""`mispec init` writes the schema its `$schema` line names (issue 31 §5)."""

from __future__ import annotations

import json
import re

from mispec.cli.main import main


def _schema_line_target(spec_text: str) -> str:
    m = re.search(r"^# yaml-language-server: \$schema=(\S+)$", spec_text, re.M)
    assert m, spec_text[:200]
    return m.group(1)


def test_init_writes_the_schema_its_line_names_equal_to_mispec_schema(tmp_path, capsys):
    spec = tmp_path / "sub" / "study.yaml"
    assert main(["init", str(spec)]) == 0
    capsys.readouterr()
    target = spec.parent / _schema_line_target(spec.read_text())
    assert target == tmp_path / "sub" / "spec.schema.json" and target.is_file()
    assert main(["schema"]) == 0
    printed = capsys.readouterr().out
    assert target.read_text() == printed
    assert json.loads(printed)["properties"]["metrics"]  # a real schema, not an empty file


def test_init_with_a_schema_path_and_a_url(tmp_path, capsys):
    spec = tmp_path / "a.yaml"
    assert main(["init", str(spec), "--schema", "schemas/s.json"]) == 0
    assert _schema_line_target(spec.read_text()) == "schemas/s.json"
    assert json.loads((tmp_path / "schemas" / "s.json").read_text())["properties"]["models"]
    other = tmp_path / "b.yaml"
    url = "https://example.org/spec.schema.json"
    assert main(["init", str(other), "--schema", url]) == 0
    assert _schema_line_target(other.read_text()) == url
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml", "schemas"]
