"""The per-checkpoint nodes of a plan: forward passes and metric cells, with their keys.

A cell's key hashes its function, version (a plugin's code) and args with what it reads: its forward pass (an
activation metric), its checkpoint and prompt set (an intervention), its checkpoint (a
weights metric) — and the keys of the cells named in its ``inputs``. An input is usually a
cell of the same checkpoint; an :class:`~mispec.spec.metrics.InputRef` names one of another
checkpoint instead (a fixed step of the run, another seed, another model). Because the input
cell's key already carries its checkpoint's identity, the reading cell's key changes exactly
when what it reads changes. Keys are worked out on demand and remembered, so a cell may read
one that the planner reaches later (the last step, a later seed).

Each metric's args are bound over its function's defaults, and the hooks they make it read
worked out, once per plan: every node of the metric carries the same two (see
:mod:`mispec.planning.nodes`), and its key hashes those very args.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import networkx as nx

from mispec.errors import PlanError
from mispec.hashing import content_key
from mispec.metrics.core import MetricDef
from mispec.planning.nodes import (
    BoundArgs,
    CellNode,
    ForwardNode,
    cell_id,
    forward_id,
    pair_cell_id,
    series_label,
)
from mispec.planning.resolve import Resolution
from mispec.spec.metrics import InputRef
from mispec.spec.schema import Spec
from mispec.spec.sweep import point_prompts

Where = tuple[str, int, int]  # (model, seed, step)
_POLICY_RANK = {"store": 2, "float16": 1, "skip": 0}


class CellPlanner:
    """Forward and cell nodes of every checkpoint, keyed and remembered."""

    def __init__(
        self,
        spec: Spec,
        resolution: Resolution,
        defs: Mapping[str, MetricDef],
        order: tuple[str, ...],
        granularity: Mapping[str, str],
    ):
        self.spec, self.resolution, self.defs = spec, resolution, defs
        self.order, self.granularity = order, granularity
        # per metric: its bound args, and the hooks an activation metric reads with them
        self.args = {n: BoundArgs(defs[n].bind_args(m.args)) for n, m in spec.metrics.items()}
        self.hooks = {
            n: defs[n].hooks_for(self.args[n]) if defs[n].kind == "activation" else ()
            for n in spec.metrics
        }
        self.hook_policy = self._hook_policies()
        self._ckpt = {
            ms: dict(zip(series.steps, series.checkpoint_ids, strict=True))
            for ms, series in resolution.series.items()
        }
        self._forwards: dict[Where, dict[str, ForwardNode]] = {}
        self._cells: dict[tuple[Any, ...], CellNode] = {}
        self.crossing = False  # some cell reads another checkpoint's cell

    def prompts_of(self, model: str, prompts: str | None) -> str:
        """The prompt set ``model`` reads for a metric's ``prompts`` (a sweep's point reads its
        own copy of a prompt set of its task: ``mispec.spec.sweep``)."""
        return point_prompts(self.spec.models[model], prompts or "")

    def metrics_on(self, model: str) -> list[str]:
        """The metrics that run on ``model``, in topological order."""
        return [m for m in self.order if model in (self.spec.metrics[m].models or [model])]

    def forwards(self, model: str, seed: int, step: int) -> dict[str, ForwardNode]:
        """Prompt set -> the one forward pass of this checkpoint on it, with the union of the
        hooks its activation metrics read."""
        where = (model, seed, step)
        if where not in self._forwards:
            spec, defs = self.spec, self.defs
            wanted: dict[str, list[str]] = defaultdict(list)
            for name in self.metrics_on(model):
                if self.granularity[name] == "group" and defs[name].kind == "activation":
                    wanted[self.prompts_of(model, spec.metrics[name].prompts)].append(name)
            out: dict[str, ForwardNode] = {}
            for pname, names in sorted(wanted.items()):
                hooks = sorted({h for n in names for h in self.hooks[n]})
                key = content_key(
                    "forward",
                    self._ckpt[(model, seed)][step],
                    self.resolution.prompt_ids[pname],
                    spec.models[model].dtype,
                    self.resolution.source_ids[model],
                )
                out[pname] = ForwardNode(
                    forward_id(model, seed, step, pname),
                    key,
                    model,
                    seed,
                    step,
                    pname,
                    tuple((h, self.hook_policy[h]) for h in hooks),
                    spec.models[model].dtype,
                )
            self._forwards[where] = out
        return self._forwards[where]

    def cell(
        self, name: str, model: str, seed: int, step: int, pair: Where | None = None
    ) -> CellNode:
        """The cell of metric ``name`` at checkpoint (model, seed, step); for a comparison
        (``pairs:``), the one whose other-side inputs read checkpoint ``pair``."""
        at: tuple[Any, ...] = (
            (name, model, seed, step) if pair is None else (name, model, seed, step, *pair)
        )
        if at in self._cells:
            return self._cells[at]
        mdef, m = self.defs[name], self.spec.metrics[name]
        ckpt_key = self._ckpt[(model, seed)][step]
        common = ("cell", mdef.name, mdef.key_version, self.args[name])
        if pair is not None:
            self.crossing = True
        ups = {
            p: self.cell(
                ref.metric,
                *(
                    pair
                    if pair is not None and p in mdef.other_side
                    else self.target(name, p, ref, (model, seed, step))
                ),
            )
            for p, ref in m.input_refs().items()
        }
        input_keys = {p: c.key for p, c in ups.items()}
        forward = None
        if mdef.kind == "activation":
            fnode = self.forwards(model, seed, step)[self.prompts_of(model, m.prompts)]
            mine = {h: p for h, p in fnode.hooks if h in self.hooks[name]}
            parts: tuple[Any, ...] = (fnode.key, {h: p == "float16" for h, p in mine.items()})
            forward = fnode.id
        elif mdef.kind == "intervention":
            parts = (
                ckpt_key,
                self.resolution.prompt_ids[self.prompts_of(model, m.prompts)],
                self.spec.models[model].dtype,
                self.resolution.source_ids[model],
            )
        elif mdef.kind == "weights":
            parts = (ckpt_key, self.spec.models[model].dtype)
        else:  # derived: what it reads is all it depends on
            parts, input_keys = (input_keys,), {}
        key = content_key(*common, *parts, *((input_keys,) if input_keys else ()))
        inputs = tuple(sorted((p, c.id) for p, c in ups.items()))
        node = CellNode(
            cell_id(name, model, seed, step)
            if pair is None
            else pair_cell_id(name, model, seed, step, pair),
            key,
            model,
            seed,
            step,
            name,
            None if m.prompts is None else self.prompts_of(model, m.prompts),
            forward,
            inputs,
            pair,
            self.args[name],
            self.hooks[name],
        )
        self._cells[at] = node
        return node

    def cells_at(self, name: str, model: str, seed: int, step: int) -> list[CellNode]:
        """The cells of metric ``name`` that checkpoint (model, seed, step) computes: its one
        cell, or for a comparison one per second side that ``pairs:`` gives it (none when it
        is no first side)."""
        pairs = self.spec.metrics[name].pairs
        if pairs is None:
            return [self.cell(name, model, seed, step)]
        from mispec.planning.pairs import partners

        return [
            self.cell(name, model, seed, step, other)
            for other in partners(pairs, self.resolution, (model, seed, step))
        ]

    def target(self, reader: str, param: str, ref: InputRef, here: Where) -> Where:
        """The checkpoint whose cell ``ref`` names, read from checkpoint ``here``."""
        model, seed, step = here
        if ref.is_local:
            return here
        self.crossing = True
        where = f"metrics.{reader}.inputs.{param}"
        t_model = ref.model or model
        t_seed = seed if ref.seed is None else ref.seed
        series = self.resolution.series.get((t_model, t_seed))
        if series is None:
            raise PlanError(f"{where}: there is no run {series_label(t_model, t_seed)} to read")
        if ref.step == "last":
            t_step = series.steps[-1]
        elif ref.step == "first":
            t_step = series.steps[0]
        else:
            t_step = step if ref.step is None else ref.step
        if t_step not in self._ckpt[(t_model, t_seed)]:
            raise PlanError(
                f"{where}: {series_label(t_model, t_seed)} has no checkpoint at step {t_step} "
                f"(its steps: {_shown_steps(series.steps)})"
            )
        if t_model not in (self.spec.metrics[ref.metric].models or [t_model]):
            raise PlanError(f"{where}: metric '{ref.metric}' does not run on model '{t_model}'")
        return (t_model, t_seed, t_step)

    def _hook_policies(self) -> dict[str, str]:
        """Storage policy per hook template: the spec's top-level ``cache:`` entry wins;
        otherwise the most keeping of the policies of the metrics that read it (store >
        float16 > skip)."""
        policies: dict[str, str] = {}
        for name, m in self.spec.metrics.items():
            for hook in self.hooks[name]:
                wanted = m.cache or "store"
                if hook not in policies or _POLICY_RANK[wanted] > _POLICY_RANK[policies[hook]]:
                    policies[hook] = wanted
        policies.update(self.spec.cache)
        return policies


def _shown_steps(steps: tuple[int, ...]) -> str:
    shown = ", ".join(map(str, steps[:8]))
    return shown + (f", … ({len(steps)} in all)" if len(steps) > 8 else "")


def check_groups_acyclic(work: nx.DiGraph) -> None:
    """Cells that read other checkpoints make their groups wait on those checkpoints' groups
    (``work``: the plan's work graph); a ring of such waits cannot run, since each group runs
    as one unit. PlanError naming the ring."""
    try:
        ring = nx.find_cycle(work)
    except nx.NetworkXNoCycle:
        return
    groups = " -> ".join(u for u, _ in ring)
    raise PlanError(
        "metric inputs from other checkpoints make checkpoint groups wait on each other in a "
        f"ring ({groups}); read them in one direction only (e.g. each seed from a later one)"
    )
