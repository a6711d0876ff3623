"""The repeated-token toy of the DESIGN really learns to copy (measured, not assumed).

With a FIXED repeat offset (no ``min_len``) the task is solvable by position alone, and it is:
the copying head sits in layer 0 with no previous-token head before it (asserted below). The
default study therefore trains with ``min_len`` (a varying offset), which forces the two-layer
induction circuit; ``tests/system/test_default_study.py`` checks that circuit.

Model: 2-layer attention-only, d_model 64, 4 heads of 16, LN, vocab 64, half_len 24,
batch 64, AdamW (lr 1e-3, weight decay 0.01). Loss floor on the repeated half: 0 nats —
each repeated token is a deterministic function of the first half (see
``mispec.tasks.induction``). Measured on 2 CPU cores: ~17 ms/step; the induction
score jumps from ~0.09 (step 75) to ~0.76 (step 125) and the repeated-half loss falls
below 0.05 by step ~175.
"""

from __future__ import annotations

import torch

from mispec.models import ensure_trained
from mispec.sources import source_for
from mispec.sources.trained import TrainedModelSpec
from mispec.spec.train import TrainSpec
from mispec.tasks.generators import PROMPT_GENERATORS

HALF = 24
TOY = TrainSpec(
    task="repeated_tokens",
    task_args={"vocab": 64, "half_len": HALF},
    arch={"n_layers": 2, "n_heads": 4, "d_model": 64, "d_head": 16, "attn_only": True},
    steps=1500,
    batch_size=64,
    optimizer={"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
)
FLOOR = 0.0


def induction_scores(cache, n_layers: int) -> torch.Tensor:
    """[layer, head]: mean attention from each second-half query q to q - HALF + 1, the
    token after the query token's earlier copy."""
    q = torch.arange(HALF + 1, 2 * HALF + 1)
    return torch.stack(
        [
            cache[f"blocks.{i}.attn.hook_pattern"][:, :, q, q - HALF + 1].mean((0, 2))
            for i in range(n_layers)
        ]
    )


def test_default_toy_forms_induction_heads(tmp_path):
    steps = [0, 100, 200, 300]
    report = ensure_trained("toy", TOY, 0, steps, tmp_path, progress=False)
    assert report.steps_trained == 300
    ps = PROMPT_GENERATORS.get("repeated_tokens")(seed=123, n=64, vocab=64, half_len=HALF)
    tokens, mask = torch.from_numpy(ps.tokens), torch.from_numpy(ps.extras["loss_mask"])
    handle = source_for("toy", TrainedModelSpec(train=TOY), tmp_path).open(0, tmp_path)
    results = {}
    for step in steps:
        with torch.no_grad():
            logits, cache = handle.load(step).run_with_cache(
                tokens, names_filter=lambda n: n.endswith("hook_pattern")
            )
        logp = torch.log_softmax(logits[:, :-1].double(), -1)
        loss = -logp.gather(-1, tokens[:, 1:, None])[..., 0][mask].mean().item()
        results[step] = (loss, induction_scores(cache, 2).max().item())
    print({s: (round(a, 4), round(b, 3)) for s, (a, b) in results.items()})
    assert results[0][1] < 0.2  # no induction at initialisation
    assert results[300][0] - FLOOR < 0.05  # repeated half solved
    assert results[300][1] > 0.5  # by a head attending to the token after the earlier copy
    formed = min(s for s, (_, score) in results.items() if score > 0.5)
    assert 100 < formed <= 300
    with torch.no_grad():
        _, cache = handle.load(300).run_with_cache(
            tokens, names_filter=lambda n: n.endswith("hook_pattern")
        )
    per_layer = induction_scores(cache, 2).max(dim=1).values
    assert per_layer[0] > 0.5 > per_layer[1]  # the positional shortcut: layer 0 copies
