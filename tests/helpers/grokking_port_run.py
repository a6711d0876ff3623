"""Train the port of the grokking paper (``tests/helpers/grokking_paper.py``) until its test
loss falls below a level, and write its curve: the port's own grokking step, per seed and per
choice switched to mispec's (issue 28's seed spread and per-difference effects).

    python -m tests.helpers.grokking_port_run --seed 0 --out port_s0.json
    python -m tests.helpers.grokking_port_run --seed 0 --warmup mispec --out port_w.json
    python -m tests.helpers.grokking_port_run --seed 0 --split mispec --out port_s.json

One thread (``torch.set_num_threads(1)``), float32 weights, float64 loss (the paper's). The
test loss is evaluated every ``--every`` updates (before the update, as the paper logs it);
the JSON holds the curve and ``crossing``: the first evaluated update whose test loss is
below ``--below`` (null if none within ``--max-updates``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tests.helpers.grokking_paper import (
    PaperConfig,
    PortOptions,
    Transformer,
    all_pairs,
    make_optimizer,
    paper_loss,
    train_test_pairs,
)


def split(cfg: PaperConfig, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training and test pairs: the paper's shuffle, or mispec's default permutation."""
    if which == "paper":
        train, test = train_test_pairs(cfg)
        return torch.tensor(train), torch.tensor(test)
    from mispec.tasks.arithmetic import modular_addition

    mask = modular_addition(cfg.p, cfg.frac_train, 0).train_mask
    pairs = torch.tensor(all_pairs(cfg.p))
    return pairs[torch.from_numpy(mask)], pairs[torch.from_numpy(~mask)]


def run(seed: int, warmup: str, which_split: str, max_updates: int, every: int, below: float):
    torch.set_num_threads(1)
    cfg = PaperConfig(seed=seed)
    torch.manual_seed(seed)
    model = Transformer(cfg)
    train_data, test_data = split(cfg, which_split)
    options = PortOptions(warmup_update0_at_zero=warmup == "paper")
    optimizer, scheduler = make_optimizer(model, cfg, options)
    curve: list[tuple[int, float, float]] = []
    crossing = None
    start = time.time()
    for update in range(max_updates + 1):
        loss = paper_loss(model, train_data, cfg.p, options)
        if update % every == 0:
            with torch.no_grad():
                test = paper_loss(model, test_data, cfg.p, options).item()
            curve.append((update, loss.item(), test))
            if test < below and crossing is None:
                crossing = update
                break
            if update % (every * 100) == 0:
                print(f"update {update}: train {loss.item():.4g} test {test:.4g} "
                      f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
        if update == max_updates:
            break
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return {
        "seed": seed, "warmup": warmup, "split": which_split, "below": below,
        "crossing": crossing, "n_train": len(train_data), "seconds": time.time() - start,
        "curve": np.asarray(curve).tolist(),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", choices=["paper", "mispec"], default="paper")
    ap.add_argument("--split", choices=["paper", "mispec"], default="paper")
    ap.add_argument("--max-updates", type=int, default=15000)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--below", type=float, default=1.0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    out = run(a.seed, a.warmup, a.split, a.max_updates, a.every, a.below)
    a.out.write_text(json.dumps(out))
    print(f"seed {a.seed} warmup {a.warmup} split {a.split}: crossing {out['crossing']}")


if __name__ == "__main__":
    main()
