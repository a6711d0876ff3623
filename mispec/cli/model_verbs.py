"""Verbs over a run's models: ``export-checkpoint`` (one checkpoint as a Hugging Face
folder; :func:`mispec.api.export_checkpoint`)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def cmd_export_checkpoint(args: argparse.Namespace) -> int:
    from mispec.api import export_checkpoint

    done = export_checkpoint(
        args.run, args.model, args.out, seed=args.seed, step=args.step, store=args.store
    )
    if args.format == "json":
        sys.stdout.write(json.dumps(done.to_json(), indent=1) + "\n")
        return 0
    how = (
        "the Hugging Face model as it is"
        if done.mapping == "hf"
        else "the exact GPT-2 (GPT2LMHeadModel) of the TransformerLens model"
    )
    sys.stdout.write(
        f"wrote {done.out} ({', '.join(done.files)}): {how}\n"
        f"  load with: transformers.AutoModelForCausalLM.from_pretrained('{done.out}')\n"
    )
    return 0


def _register_export_checkpoint(sub: Any) -> None:
    p = sub.add_parser(
        "export-checkpoint",
        help="write one checkpoint of a run's model as a Hugging Face folder "
        "(config.json + model.safetensors), loadable by transformers and nnsight",
    )
    p.add_argument("run", metavar="RUN", help="a run folder (runs/NAME) or a spec file")
    p.add_argument("model", metavar="MODEL", help="the model's name in the spec")
    p.add_argument("out", metavar="OUT", help="the folder to write (absent or empty)")
    p.add_argument("--seed", type=int, help="the seed (needed when the model has several)")
    p.add_argument("--step", type=int, help="the checkpoint (default: the run's last)")
    p.add_argument("--store", help="store folder (default: the run's, or the spec's)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_export_checkpoint)


REGISTER = [_register_export_checkpoint]
