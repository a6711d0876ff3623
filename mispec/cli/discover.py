"""Verbs that show what exists: ``list`` (the catalogue) and ``init`` (a starter spec)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cmd_list(args: argparse.Namespace) -> int:
    from mispec.catalogue.entries import catalogue, entries
    from mispec.catalogue.render import RENDERERS

    if args.kind is None:
        cat = catalogue(builtin_only=args.builtin)
    else:
        cat = {args.kind: entries(args.kind, builtin_only=args.builtin)}
    sys.stdout.write(RENDERERS[args.format](cat) + "\n")
    return 0


def _register_list(sub: Any) -> None:
    from mispec.catalogue.entries import KINDS

    p = sub.add_parser(
        "list",
        help="list the metrics, tasks, prompt generators, model sources and executors a "
        "spec can name (built-ins and installed plugins)",
    )
    p.add_argument(
        "kind", nargs="?", metavar="KIND", help=f"one of {', '.join(KINDS)} (default: all)"
    )
    p.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    p.add_argument("--builtin", action="store_true", help="leave installed plugins out")
    p.set_defaults(func=cmd_list)


STARTER = """\
# yaml-language-server: $schema={schema}
# A starter mispec study: `mispec validate {name}`, `mispec plan {name}`, `mispec run {name}`.
# `mispec list` names every metric, task and prompt generator you can use here.
mispec: 1                 # spec format version
name: {study}             # the run folder is runs/<name>/
description: Induction heads in a small attention-only model.

models:
  toy:                    # a model mispec trains itself (other sources: `mispec list sources`)
    train:
      task: repeated_tokens                   # `mispec list tasks`
      task_args: {{vocab: 64, half_len: 24, min_len: 12}}
      arch: {{n_layers: 2, n_heads: 4, d_model: 64, d_head: 16, attn_only: true}}
      steps: 500
      batch_size: 64
    seeds: [0, 1]                             # one training run per seed
    checkpoints: {{schedule: log, count: 20}}   # which steps to measure

prompts:
  repeats:                # a prompt set: `mispec list generators`
    generator: repeated_tokens
    args: {{n: 32, vocab: 64, half_len: 24}}
    seed: 123

metrics:                  # a DAG of metrics: `mispec list metrics`
  loss:      {{fn: loss, prompts: repeats}}
  induction: {{fn: induction_score, prompts: repeats}}           # dims (layer, head)
  best:      {{fn: reduce, inputs: {{x: induction}}, args: {{over: [layer, head], how: max}}}}
  transition: {{fn: transition_step, inputs: {{series: best}}}}   # one step per seed
"""


def cmd_init(args: argparse.Namespace) -> int:
    from mispec.errors import UserError

    path = Path(args.path)
    if path.exists() and not args.force:
        raise UserError(f"{path} exists; pass --force to overwrite it")
    study = args.name or path.stem.replace(" ", "-") or "study"
    path.parent.mkdir(parents=True, exist_ok=True)
    schema_file = _schema_file(path, args.schema)
    if schema_file is not None:  # the file the `$schema` line names, as `mispec schema` writes it
        from mispec.catalogue.editor_schema import editor_schema

        schema_file.parent.mkdir(parents=True, exist_ok=True)
        schema_file.write_text(json.dumps(editor_schema(), indent=2) + "\n", "utf-8")
    path.write_text(STARTER.format(schema=args.schema, name=path.name, study=study))
    also = f" and its schema {schema_file}" if schema_file is not None else ""
    sys.stdout.write(f"wrote {path}{also}; next: mispec validate {path}\n")
    return 0


def _schema_file(spec: Path, schema: str) -> Path | None:
    """The file a spec's ``$schema=`` line names (relative to the spec's folder, as editors
    read it), or None for a URL (nothing to write)."""
    if "://" in schema:
        return None
    return spec.parent / schema


def _register_init(sub: Any) -> None:
    p = sub.add_parser("init", help="write a commented starter spec")
    p.add_argument("path", nargs="?", default="study.yaml", metavar="SPEC")
    p.add_argument("--name", help="the study's name (default: the file's stem)")
    p.add_argument(
        "--schema",
        default="spec.schema.json",
        help="the JSON Schema the spec's $schema line names, relative to the spec; written "
        "there (as `mispec schema` prints it) unless it is a URL (default: spec.schema.json)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)


REGISTER = [_register_list, _register_init]
