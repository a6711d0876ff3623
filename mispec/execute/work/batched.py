"""Batched checkpoint evaluation in the executor: the activations of the next few checkpoint
groups of one model, computed in one forward call each (``vmap`` over their stacked weights,
:mod:`mispec.metrics.forward_batched`), before the first of them runs.

The seam is one call: before the local executor runs a ``GroupNode`` it calls
:func:`prefetch` with that node and the nodes after it. ``prefetch`` takes the leading run of
checkpoint groups that can share a forward call — the same model (its seeds share the
architecture), each needing one forward pass per prompt set with the very same hooks (their
missing cells' hooks that the activation cache lacks) — up to the profile's
``batch_checkpoints`` and as many as ``batch_memory`` holds, and leaves their activations in
``ctx.prefetched``. :func:`mispec.execute.work.group._activations` takes them from there instead of
running a forward pass, and writes them to the activation cache exactly as it writes its own;
each checkpoint still counts one ``forward_passes`` per prompt set, each batched call one
``batched_forward_calls``.

Only native models batch (``train:``, ``path:`` folders of state dicts, TL hub models: one
bridge whose weights are swapped per step); HF-booted bridges (``HFBoot``) are evaluated one at
a time. A model whose bridge cannot run under ``vmap`` is warned about once and evaluated one at
a time. The stash holds at most one call's checkpoints: it is emptied whenever a new call is
made.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mispec.errors import MispecError
from mispec.planning.nodes import ForwardNode, GroupNode

if TYPE_CHECKING:
    from mispec.execute.context import RunContext
    from mispec.execute.profile import RunSettings
    from mispec.planning.nodes import WorkNode

MIB = 1 << 20
AUTO_CPU_MEMORY_MIB = 1024  # ``batch_memory: auto`` on a CPU
AUTO_CUDA_MAX_CHECKPOINTS = 64  # ``batch_checkpoints: auto`` on CUDA: at most this many

# per prompt set of a group: (forward node id, the hooks its forward pass must compute)
Needs = dict[str, tuple[str, frozenset[str]]]


@dataclass
class Prefetched:
    """Activations computed ahead (``acts``: forward node id → ``{hook: tensor}``), the
    measured bytes per checkpoint of a call (``sizes``), and models that cannot batch."""

    acts: dict[str, dict[str, Any]] = field(default_factory=dict)
    sizes: dict[tuple[Any, ...], int] = field(default_factory=dict)
    unbatchable: set[str] = field(default_factory=set)

    def take(self, forward_id: str, hooks: Sequence[str]) -> dict[str, Any] | None:
        """The prefetched ``hooks`` of one forward node (removed from the stash), or None."""
        acts = self.acts.pop(forward_id, None)
        if acts is None or not set(hooks) <= set(acts):
            return None
        return {h: acts[h] for h in hooks}


def checkpoint_limit(settings: RunSettings, device: str) -> int:
    """The most checkpoints per call: the profile's number; ``auto``: 1 on a CPU (measured no
    faster there, docs/speed.md), :data:`AUTO_CUDA_MAX_CHECKPOINTS` elsewhere."""
    if settings.batch_checkpoints != "auto":
        return int(settings.batch_checkpoints)
    return 1 if device == "cpu" else AUTO_CUDA_MAX_CHECKPOINTS


def memory_budget(settings: RunSettings, device: str) -> int:
    """Bytes one batched call may hold: the profile's MiB; ``auto``: 1 GiB on a CPU, a
    quarter of the free memory of a CUDA device."""
    if settings.batch_memory != "auto":
        return int(float(settings.batch_memory) * MIB)
    if device.startswith("cuda"):
        import torch

        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free // 4)
    return AUTO_CPU_MEMORY_MIB * MIB


def forward_needs(ctx: RunContext, group: GroupNode) -> Needs:
    """Per prompt set, the forward node and the hooks a run of ``group`` would compute: the
    hooks its missing cells read, less those the activation cache holds (as ``_activations``
    decides)."""
    from mispec.execute.work.group import missing_cells
    from mispec.store.activations import stored_hook

    plan = ctx.plan
    wanted: dict[str, set[str]] = {}
    for cell in missing_cells(ctx, plan.cells(group)):
        if cell.forward is not None:
            wanted.setdefault(cell.forward, set()).update(cell.hooks)
    needs: Needs = {}
    for fid, hooks in wanted.items():
        fnode = plan.node(fid)
        assert isinstance(fnode, ForwardNode)
        policy = dict(fnode.hooks)
        missing = {
            h
            for h in hooks
            if policy[h] == "skip"
            or not ctx.store.activations.has(fnode.key, stored_hook(h, policy[h]))
        }
        if missing:
            needs[fnode.prompts] = (fid, frozenset(missing))
    return needs


def _signature(needs: Needs) -> dict[str, frozenset[str]]:
    return {prompts: hooks for prompts, (_fid, hooks) in needs.items()}


def prefetch(ctx: RunContext, upcoming: Iterable[WorkNode], settings: RunSettings) -> None:
    """Before the first node of ``upcoming`` runs: if it is a checkpoint group whose activations are not
    stashed yet, compute those of it and of the groups right after it that can share its
    forward calls (see the module docstring), at most one call's worth, into
    ``ctx.prefetched``. Does nothing for other nodes, or where one checkpoint would go alone.

    ``upcoming``: the nodes THIS process will run next, in the order it runs them, each with
    its upstream done (a group whose training is still running elsewhere must not be in it:
    reading its weights would train them here); read lazily, only as far as one call reaches
    (a generator keeps a long queue's cost per node constant). A group that runs in another
    order than ``upcoming`` said is still correct: its activations are computed again."""
    if settings.batch_checkpoints == 1:
        return
    nodes = iter(upcoming)
    first = next(nodes, None)
    if not isinstance(first, GroupNode):
        return
    state = ctx.prefetched if ctx.prefetched is not None else Prefetched()
    ctx.prefetched = state
    device = ctx.model_device(first.model)
    limit = checkpoint_limit(settings, device)
    if limit < 2 or first.model in state.unbatchable:
        return
    needs = forward_needs(ctx, first)
    if not needs or all(fid in state.acts for fid, _hooks in needs.values()):
        return
    state.acts.clear()  # what is left was not taken: stale
    run = [(first, needs)]
    for node in nodes:
        if len(run) >= limit or not isinstance(node, GroupNode) or node.model != first.model:
            break
        node_needs = forward_needs(ctx, node)
        if _signature(node_needs) != _signature(needs):
            break
        run.append((node, node_needs))
    if len(run) < 2:
        return
    _batched_calls(ctx, state, run, settings, device, limit)


def _batched_calls(
    ctx: RunContext,
    state: Prefetched,
    run: list[tuple[GroupNode, Needs]],
    settings: RunSettings,
    device: str,
    limit: int,
) -> None:
    """One batched forward call per prompt set for as many of ``run`` as the memory budget
    holds; their activations go to ``state.acts``."""
    from mispec.metrics.forward_batched import bytes_per_checkpoint, run_forward_batched
    from mispec.models.handle import NativeSwap

    first, needs = run[0]
    handle = ctx.handle(first.model, first.seed)
    if not isinstance(handle.route, NativeSwap):
        state.unbatchable.add(first.model)  # HF-booted: a fresh bridge per step
        return
    bridge = handle.load(first.step)
    tokens = {p: ctx.prompts(p, first.model).tokens for p in needs}
    per_checkpoint = 0
    for prompts, (_fid, hooks) in needs.items():
        key = (first.model, prompts, hooks, ctx.batch_size)
        if key not in state.sizes:
            state.sizes[key] = bytes_per_checkpoint(
                bridge, tokens[prompts], sorted(hooks), batch_size=ctx.batch_size
            )
        per_checkpoint = max(per_checkpoint, state.sizes[key])
    k = min(limit, len(run), max(1, memory_budget(settings, device) // max(per_checkpoint, 1)))
    if k < 2:
        return
    states = [{key: t.detach() for key, t in bridge.state_dict().items()}]
    for node, _needs in run[1:k]:
        try:
            states.append(_weights(ctx, handle, node))
        except MispecError:
            break  # its own group run raises (or repairs) it, one at a time
    if len(states) < 2:
        return
    ctx.counted_load(handle.name, handle.seed, len(states))  # the first by ``handle.load``
    import torch

    try:
        for prompts, (_fid, hooks) in needs.items():
            outs = run_forward_batched(
                bridge,
                states,
                torch.from_numpy(tokens[prompts]),
                sorted(hooks),
                batch_size=ctx.batch_size,
                device=bridge.cfg.device,
            )
            ctx.counters.batched_forward_calls += 1
            for (_node, node_needs), acts in zip(run, outs, strict=False):
                state.acts[node_needs[prompts][0]] = acts
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        state.acts.clear()
        state.unbatchable.add(first.model)
        warnings.warn(
            f"mispec: model '{first.model}' cannot evaluate several checkpoints in one forward "
            f"call ({type(exc).__name__}: {exc}); evaluating one checkpoint at a time",
            stacklevel=2,
        )


def _weights(ctx: RunContext, handle: Any, node: GroupNode) -> dict[str, Any]:
    """The bridge-keyed weights of ``node``'s checkpoint, read without loading them into a
    bridge (another seed's through its own, unbooted, handle)."""
    if node.seed == handle.seed:
        route = handle.route
    else:
        other: Any = ctx.plan.resolution.sources[node.model].open(
            node.seed,
            ctx.store.root,
            device=ctx.model_device(node.model),
            dtype=node.dtype,
        )
        route = other.route
    weights: dict[str, Any] = route.state_for(node.step)
    return weights
