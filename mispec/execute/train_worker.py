"""A training worker process: ``python -m mispec.execute.train_worker`` reads one job as JSON
on stdin (see :class:`mispec.execute.parallel_training.TrainingPool`), trains that (model,
seed) into the store under pinned torch threads, and prints its task record as one JSON line:
``{"counters": {"training_steps": N}}`` or a failure record (:mod:`mispec.execute.remote`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def train(job: dict[str, Any]) -> dict[str, Any]:
    from pydantic import TypeAdapter

    from mispec.errors import MispecError
    from mispec.execute.remote import failure
    from mispec.execute.threads import pinned_torch_threads
    from mispec.registry import beside
    from mispec.sources import sources_for
    from mispec.spec.schema import ModelSpec, ModelSpecBase

    try:
        adapter = TypeAdapter(ModelSpec)
        entries: dict[str, ModelSpecBase] = {
            name: adapter.validate_python(data, strict=False)
            for name, data in job["entries"].items()
        }
        base_dir = Path(job["base_dir"])
        source = sources_for(entries, base_dir)[job["model"]]  # bound: parents are known
        # plugins named `module:name` are found beside the spec, as when it was validated
        with beside(base_dir), pinned_torch_threads(job["threads"]):
            trained = source.prepare(job["seed"], job["steps"], Path(job["store"]), progress=False)
    except MispecError as exc:
        return failure(job["node"], exc)
    return {"counters": {"training_steps": trained}}


def main() -> None:
    record = train(json.loads(sys.stdin.read()))
    sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
