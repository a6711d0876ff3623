"""Where a trained toy model starts and what stays fixed: ``init_from``, ``init`` and ``freeze``.

The initial weights (step 0) of a ``train:`` model are built in this order:

1. the seeded fresh initialisation (as for any model), unless ``init_from`` names a
   checkpoint of another model entry, whose weights replace it (all of them, by name; an
   architecture mismatch is refused before anything is trained);
2. each ``init`` operation in turn: ``copy`` the named heads/parameters from a checkpoint,
   ``zero`` them, ``randomize`` them (their values in the fresh initialisation of another
   seed) or ``scale`` them by ``factor``.

Step 0 is saved like any step, so the weights a study measures at step 0 are exactly the
ones training starts from. ``freeze`` holds the named entries at their step-0 values: their
gradients are zeroed before clipping and the optimizer step, and their values put back after
it, so neither Adam's moments nor weight decay can move them (a zeroed, frozen head stays
knocked out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from mispec.errors import CheckpointError
from mispec.models.native import KeyMap, plain_model, to_bridge_state
from mispec.models.weight_targets import Selection, select
from mispec.spec.weight_edits import SurgeryOp

State = dict[str, torch.Tensor]
RANDOMIZE_SEED_OFFSET = 1_000_003


@dataclass
class Start:
    """Step 0 of a run that does not start fresh: its weights, the optimizer state to carry
    (or ``None``), and the training steps other runs needed to provide them."""

    weights: State
    optimizer: dict | None = None
    steps_trained: int = 0


def mask_of(selection: Selection, state: State) -> dict[str, torch.Tensor]:
    """Boolean masks, one per selected key, true on the selected entries."""
    masks = {}
    for key, slices in selection.items():
        m = torch.zeros(state[key].shape, dtype=torch.bool)
        if slices is None:
            m[...] = True
        for dim, lo, hi in slices or ():
            index = [slice(None)] * m.dim()
            index[dim] = slice(lo, hi)
            m[tuple(index)] = True
        masks[key] = m
    return masks


def check_compatible(state: State, expected: State, parent: str) -> None:
    """Refuse a parent checkpoint whose keys or shapes differ from this model's."""
    lines = [
        f"{k}: {list(state[k].shape) if k in state else 'absent'} in '{parent}', "
        f"{list(expected[k].shape) if k in expected else 'absent'} here"
        for k in sorted(set(state) | set(expected))
        if k not in state or k not in expected or state[k].shape != expected[k].shape
    ]
    if lines:
        raise CheckpointError(
            f"the checkpoint of '{parent}' does not fit this model: " + "; ".join(lines[:8])
        )


def apply_surgery(
    state: State,
    ops: list[SurgeryOp],
    donors: Sequence[Callable[[], State] | None],
    kwargs: dict,
    keys: KeyMap,
    seed: int,
) -> State:
    """``state`` after each op of ``ops`` in turn (``donors[i]``: op ``i``'s copy source)."""
    state = {k: v.clone() for k, v in state.items()}
    for op, donor in zip(ops, donors, strict=True):
        selection, problems = select(list(op.heads), list(op.params), kwargs)
        if problems:
            raise CheckpointError("; ".join(m for _, _, m in problems))
        masks = mask_of(selection, state)
        if op.op == "copy":
            assert donor is not None
            source = donor()
            check_compatible(
                {k: source[k] for k in masks if k in source},
                {k: state[k] for k in masks},
                op.source.model if op.source else "?",
            )
        elif op.op == "randomize":
            r = op.seed if op.seed is not None else RANDOMIZE_SEED_OFFSET + seed
            source = to_bridge_state(plain_model({**kwargs, "seed": r}), keys)
        for key, m in masks.items():
            t = state[key]
            if op.op == "zero":
                t[m] = 0
            elif op.op == "scale":
                assert op.factor is not None
                t[m] = t[m] * op.factor
            else:
                t[m] = source[key].to(t.dtype)[m]
    return state


class Hold:
    """Entries of a plain model's parameters held at their current values during training."""

    def __init__(self, model: torch.nn.Module, selection: Selection, keys: KeyMap):
        params = dict(model.named_parameters())
        by_bridge = {b: params[p] for p, b in keys.plain_to_bridge.items() if p in params}
        state = {k: v.detach() for k, v in by_bridge.items()}
        missing = sorted(set(selection) - set(by_bridge))
        if missing:
            raise CheckpointError(f"freeze: {missing} are not trainable parameters")
        self.items = [
            (
                by_bridge[k],
                m.to(by_bridge[k].device),
                by_bridge[k].detach()[m.to(by_bridge[k].device)].clone(),
            )
            for k, m in mask_of(selection, state).items()
        ]

    def zero_grads(self) -> None:
        for p, m, _ in self.items:
            if p.grad is not None:
                p.grad[m] = 0

    @torch.no_grad()
    def restore(self) -> None:
        for p, m, values in self.items:
            p[m] = values
