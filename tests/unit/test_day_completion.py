"""Shell completion follows the cursor: an option's value completes from its choices,
``--executor`` from the profile files, a positional from its choices. Each case runs the
generated script in a real bash (``COMP_WORDS``/``COMP_CWORD`` set, ``_mispec`` called,
``COMPREPLY`` read) and checks the words against an independent source."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pytest

import mispec
from mispec.catalogue.entries import KINDS
from mispec.cli.main import build_parser, main

PROFILES_DIR = Path(mispec.__file__).parent / "profiles"


@pytest.fixture
def complete(tmp_path, capsys):
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "mispec.bash"
    script.write_text(capsys.readouterr().out)

    def complete(*words: str, cwd: Path = tmp_path) -> list[str]:
        quoted = " ".join(f"'{w}'" for w in words)
        cmd = (
            f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _mispec; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=cwd)
        assert done.returncode == 0, done.stderr
        return [w for w in done.stdout.splitlines() if w]

    return complete


def _choices(verb: str, option: str) -> list[str]:
    """The argparse choices of ``verb``'s ``option``, read from the parser."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    action = next(a for a in sub.choices[verb]._actions if option in a.option_strings)
    return [str(c) for c in action.choices]


def test_an_option_value_completes_from_its_choices(complete):
    assert _choices("list", "--format") == ["text", "json", "markdown"]
    assert complete("mispec", "list", "--format", "") == ["text", "json", "markdown"]
    assert complete("mispec", "list", "--format", "=") == ["text", "json", "markdown"]  # --format=
    assert complete("mispec", "list", "--format", "=", "j") == ["json"]
    assert complete("mispec", "diff", "a.yaml", "b.yaml", "--format", "m") == ["markdown"]
    assert complete("mispec", "runs", "--format", "") == _choices("runs", "--format")
    # the value is not taken for the positional after it: KIND completes the kinds
    assert complete("mispec", "list", "--format", "json", "") == list(KINDS)
    assert complete("mispec", "list", "--format", "=", "json", "ge") == ["generators"]


def test_a_positional_completes_from_its_choices(complete):
    assert complete("mispec", "list", "") == list(KINDS)
    assert complete("mispec", "completion", "") == ["bash", "zsh"]
    # options only where a word starts with "-"; no metric names, no format values
    assert complete("mispec", "list", "-") == ["--builtin", "--format", "--help", "-h"]
    assert complete("mispec", "va") == ["validate"]
    assert complete("mispec", "gc", "--ap") == ["--apply"]
    assert complete("mispec", "-v", "run", "--qu") == ["--quiet"]


def test_executor_completes_the_profile_names(complete, tmp_path):
    builtin = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
    assert {"local", "dask-local"} <= set(builtin)
    assert sorted(complete("mispec", "run", "s.yaml", "--executor", "")) == builtin
    (tmp_path / "executors").mkdir()
    (tmp_path / "executors" / "gpu-box.yaml").write_text("kind: local\n")
    assert sorted(complete("mispec", "run", "s.yaml", "-e", "")) == sorted([*builtin, "gpu-box"])
    assert complete("mispec", "run", "-e", "gpu") == ["gpu-box"]
    # the profile is a value: the spec after it is the first positional, a path
    assert complete("mispec", "run", "-e", "local", "s") == []


def test_completion_without_a_shell_is_bad_input(capsys):
    assert main(["completion"]) == 2
    assert "mispec completion bash" in capsys.readouterr().err
