"""Training 4 seeds of the toy model together (``batch_seeds``) against one at a time.

Both train the toy configuration of ``throughput.py`` (the default study's model: 2-layer
attention-only, d_model 64, 4 heads, vocab 64, batch 64, AdamW) for seeds 0-3 from scratch
into a fresh store, saving every 10 steps (weights + optimizer state, as a study's log-spaced
checkpoints need early on):

* ``one at a time``: ``ensure_trained`` per seed, one after the other (``batch_seeds: 1``);
* ``together``: ``ensure_trained_together`` (stacked parameters under ``torch.func.vmap``,
  ``batch_seeds: 4``).

The figure is seed-steps per second (4 × steps / wall). The checkpoints of the two are equal
(bitwise on CPU: tests/system/test_training_batched.py). ``--device cuda`` runs both on a GPU.

    python -m benchmarks.seeds_together --steps 200 --repeats 2 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import Timing, fresh_dir, timed
from benchmarks.fixtures import TOY_TRAIN

SEEDS = [0, 1, 2, 3]


def _spec(steps: int, device: str) -> Any:
    from mispec.spec.train import TrainSpec

    return TrainSpec.model_validate(dict(TOY_TRAIN, steps=steps, device=device))


def one_at_a_time(steps: int, store: Path, device: str = "cpu") -> Timing:
    from mispec.models.training import ensure_trained

    fresh_dir(store)
    train, want = _spec(steps, device), list(range(0, steps + 1, 10))
    with timed() as t:
        for seed in SEEDS:
            ensure_trained("bench", train, seed, want, store, progress=False)
        _sync(device)
    return t


def together(steps: int, store: Path, device: str = "cpu") -> Timing:
    from mispec.models.training_batched import SeedJob, ensure_trained_together

    fresh_dir(store)
    train, want = _spec(steps, device), list(range(0, steps + 1, 10))
    with timed() as t:
        jobs = [SeedJob(seed, want) for seed in SEEDS]
        ensure_trained_together("bench", train, jobs, store, progress=False)
        _sync(device)
    return t


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure(steps: int, repeats: int, work: Path, device: str = "cpu") -> dict[str, Any]:
    """Seed-steps per second of each variant (best of ``repeats``, interleaved)."""
    variants = {
        f"{len(SEEDS)} seeds one at a time": lambda: one_at_a_time(steps, work / "seeds-a", device),
        f"{len(SEEDS)} seeds together": lambda: together(steps, work / "seeds-b", device),
    }
    one_at_a_time(5, work / "seeds-warm", device)  # warm-up (kernels, imports)
    together(5, work / "seeds-warm", device)
    runs: dict[str, list[Timing]] = {}
    for _ in range(repeats):
        for name, fn in variants.items():
            runs.setdefault(name, []).append(fn())
    out: dict[str, Any] = {}
    for name, ts in runs.items():  # the best run: interference only ever slows a loop down
        rates = sorted(len(SEEDS) * steps / t.wall for t in ts)
        out[name] = {"seed_steps_per_s": rates[-1], "all_seed_steps_per_s": rates}
    return {"device": device, "steps": steps, "repeats": repeats, "variants": out}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("benchmarks/.work"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    result = measure(args.steps, args.repeats, args.work.resolve() / "stores", args.device)
    result["threads"] = args.threads
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
