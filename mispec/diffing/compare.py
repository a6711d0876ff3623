"""The three layers of a diff — spec, plan, results — as one structured object.

A value's relative change is ``|new - old| / max(|old|, |new|)``: symmetric, between 0 and 2
(at most 1 when the sign is kept), and exactly 1 when a value moves from 0 or to 0, so it
never explodes for a value that starts at 0. ``max_rel`` is the largest one among the values
beyond tolerance (0 when none is); ``n_from_zero`` counts those whose old value was 0.
A model renamed between the two sides (same weights, see ``renames``) is compared under its
new name, with ``renamed_from`` set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mispec.diffing.sides import Side

SCHEMA_VERSION = 2  # 2: symmetric max_rel, n_from_zero, renames


@dataclass
class SpecChange:
    path: str
    change: str  # added | removed | changed | renamed (a model: old name → new name)
    old: Any = None
    new: Any = None


@dataclass
class PlanDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    invalidated: list[str] = field(default_factory=list)
    forward_passes_needed: int = 0
    training_needed: dict[str, int] = field(default_factory=dict)
    results_to_compute: int = 0


@dataclass
class VariableDiff:
    model: str
    variable: str
    change: str  # added | removed | changed | same
    max_abs: float | None = None
    max_rel: float | None = None
    n_changed: int = 0
    n_compared: int = 0
    where: list[dict[str, Any]] = field(default_factory=list)  # coords + old/new, worst first
    shifts: list[dict[str, Any]] = field(default_factory=list)  # reductions: old -> new
    coords_added: dict[str, list[Any]] = field(default_factory=dict)
    coords_removed: dict[str, list[Any]] = field(default_factory=dict)
    n_from_zero: int = 0  # values beyond tolerance whose old value was 0
    renamed_from: str | None = None  # the model's name in A, when it was renamed


@dataclass
class Diff:
    a: str
    b: str
    spec: list[SpecChange]
    plan: PlanDiff
    results: list[VariableDiff] | None
    results_note: str
    atol: float
    rtol: float
    renamed: dict[str, str] = field(default_factory=dict)  # model: name in A → name in B
    claims: list[dict[str, Any]] = field(default_factory=list)  # verdicts that changed
    schema_version: int = SCHEMA_VERSION

    @property
    def has_differences(self) -> bool:
        changed_results = self.results is not None and any(v.change != "same" for v in self.results)
        return bool(self.spec) or changed_results

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["has_differences"] = self.has_differences
        return out

    def __repr__(self) -> str:
        results = (
            "results not compared"
            if self.results is None
            else f"{sum(v.change != 'same' for v in self.results)} of {len(self.results)} "
            "variables changed"
        )
        return (
            f"<Diff {self.a} → {self.b}: {len(self.spec)} spec change(s), "
            f"{len(self.plan.invalidated)} plan node(s) invalidated, {results}>"
        )

    def _repr_markdown_(self) -> str:
        """Jupyter shows a diff as its Markdown rendering (``mispec diff --format markdown``)."""
        from mispec.diffing.render import RENDERERS

        return RENDERERS["markdown"](self)


# --------------------------------------------------------------------------- spec
def spec_changes(a: Any, b: Any, prefix: str = "") -> list[SpecChange]:
    """Semantic diff of two specs' normalized data (defaults filled, includes expanded)."""
    out: list[SpecChange] = []
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a:
                out.append(SpecChange(path, "added", None, b[key]))
            elif key not in b:
                out.append(SpecChange(path, "removed", a[key], None))
            else:
                out.extend(spec_changes(a[key], b[key], path))
    elif a != b:
        out.append(SpecChange(prefix, "changed", a, b))
    return out


def _spec_data(side: Side, renames: dict[str, str] | None = None) -> dict[str, Any]:
    data = side.loaded.spec.model_dump(mode="json")
    data.pop("include", None)
    if renames and isinstance(data.get("models"), dict):  # A's models under their B names
        data["models"] = {renames.get(k, k): v for k, v in data["models"].items()}
    from mispec.spec.sweep import fold_points

    data["models"] = fold_points(data.get("models") or {})
    return data


def renamed_spec_changes(a: Side, b: Side, renames: dict[str, str]) -> list[SpecChange]:
    """The spec layer with each renamed model compared to itself under its new name."""
    renamed = [SpecChange("models", "renamed", old, new) for old, new in sorted(renames.items())]
    return renamed + spec_changes(_spec_data(a, renames), _spec_data(b))


# --------------------------------------------------------------------------- plan
def plan_diff(a: Side, b: Side, renames: dict[str, str] | None = None) -> PlanDiff:
    from mispec.diffing.renames import renamed_id
    from mispec.results.status import plan_status
    from mispec.store.store import Store

    ka = {renamed_id(n, renames or {}): n.key for n in a.plan.nodes()}
    kb = {n.id: n.key for n in b.plan.nodes()}
    status = plan_status(b.plan, Store(b.store_dir) if b.store_dir.exists() else None)
    return PlanDiff(
        added=sorted(set(kb) - set(ka)),
        removed=sorted(set(ka) - set(kb)),
        invalidated=sorted(n for n in set(ka) & set(kb) if ka[n] != kb[n]),
        forward_passes_needed=status.forward_passes,
        training_needed=status.training_steps_todo,
        results_to_compute=status.cells_total - status.cells_cached,
    )


# --------------------------------------------------------------------------- results
def results_diff(
    ta: Any,
    tb: Any,
    *,
    atol: float,
    rtol: float,
    max_where: int = 10,
    renames: dict[str, str] | None = None,
) -> list[VariableDiff]:
    out: list[VariableDiff] = []
    in_a = {(renames or {}).get(m, m): m for m in ta.children}  # B's name → A's name
    models = sorted(set(in_a) | set(tb.children))
    for model in models:
        da = ta[in_a[model]].to_dataset() if model in in_a else None
        db = tb[model].to_dataset() if model in tb.children else None
        start = len(out)
        names = sorted(
            set(da.data_vars if da is not None else ())
            | set(db.data_vars if db is not None else ())
        )
        for name in names:
            if da is None or name not in da:
                out.append(VariableDiff(model, name, "added"))
            elif db is None or name not in db:
                out.append(VariableDiff(model, name, "removed"))
            else:
                out.append(
                    _compare_variable(model, name, da[name], db[name], atol, rtol, max_where)
                )
        if model in in_a and in_a[model] != model:
            for vd in out[start:]:
                vd.renamed_from = in_a[model]
    return out


def _compare_variable(
    model: str, name: str, va: Any, vb: Any, atol: float, rtol: float, max_where: int
) -> VariableDiff:
    import xarray as xr

    vd = VariableDiff(model, name, "same")
    for dim in sorted(set(va.dims) | set(vb.dims)):
        ca = set(va[dim].values.tolist()) if dim in va.coords else set()
        cb = set(vb[dim].values.tolist()) if dim in vb.coords else set()
        if cb - ca:
            vd.coords_added[dim] = sorted(cb - ca)
        if ca - cb:
            vd.coords_removed[dim] = sorted(ca - cb)
    if set(va.dims) != set(vb.dims):
        vd.change = "changed"
        vd.where.append({"note": f"dims {va.dims} -> {vb.dims}"})
        return vd
    a, b = xr.align(va, vb.transpose(*va.dims), join="inner")
    x, y = np.asarray(a.values, dtype=float), np.asarray(b.values, dtype=float)
    both_nan = np.isnan(x) & np.isnan(y)
    delta = np.where(both_nan, 0.0, np.abs(x - y))
    delta = np.where(np.isnan(delta), np.inf, delta)  # NaN on one side only: a change
    exceed = delta > atol + rtol * np.abs(x)
    vd.n_compared = int(x.size)
    vd.n_changed = int(exceed.sum())
    vd.max_abs = float(delta.max()) if delta.size else 0.0
    vd.max_rel = float(relative_change(x[exceed], y[exceed]).max()) if vd.n_changed else 0.0
    vd.n_from_zero = int((exceed & (x == 0)).sum())
    if vd.n_changed or vd.coords_added or vd.coords_removed:
        vd.change = "changed"
    order = np.argsort(-np.where(exceed, delta, -1).ravel(), kind="stable")[
        : min(max_where, vd.n_changed)
    ]
    for flat in order:
        idx = np.unravel_index(int(flat), x.shape)
        coords = {
            d: _py(a[d].values[i]) if d in a.coords else int(i)
            for d, i in zip(a.dims, idx, strict=True)
        }
        vd.where.append({**coords, "old": _py(x[idx]), "new": _py(y[idx])})
    is_reduction = "step" not in va.dims
    if is_reduction and vd.n_changed:
        for flat in np.flatnonzero(exceed.ravel())[:max_where]:
            idx = np.unravel_index(int(flat), x.shape)
            coords = {
                d: _py(a[d].values[i]) if d in a.coords else int(i)
                for d, i in zip(a.dims, idx, strict=True)
            }
            vd.shifts.append({**coords, "old": _py(x[idx]), "new": _py(y[idx])})
    return vd


def relative_change(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``|new - old| / max(|old|, |new|)`` per value: 0 when both are equal (0 included), 1
    when one of them is 0, at most 2 (a sign flip); NaN on one side only counts as 1."""
    old, new = np.asarray(old, dtype=float), np.asarray(new, dtype=float)
    scale = np.maximum(np.abs(old), np.abs(new))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(new - old) / scale
    rel = np.where(old == new, 0.0, rel)
    return np.where(np.isnan(rel) | np.isinf(rel), 1.0, rel)


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


# --------------------------------------------------------------------------- entry
def diff(
    a: str,
    b: str,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    store: str | None = None,
    results: bool = True,
) -> Diff:
    """Compare two specs / run folders / ``spec.yaml@rev``: spec, plan and results layers."""
    from mispec.diffing.renames import model_renames
    from mispec.diffing.sides import open_side
    from mispec.errors import DiffError

    side_a, side_b = open_side(a, store=store), open_side(b, store=store)
    if side_a.loaded.spec.name != side_b.loaded.spec.name and not _same_models(side_a, side_b):
        raise DiffError(
            f"{a} and {b} are different studies ('{side_a.loaded.spec.name}' vs "
            f"'{side_b.loaded.spec.name}', no model in common)"
        )
    renames = model_renames(side_a.plan, side_b.plan)  # within one study
    changes = renamed_spec_changes(side_a, side_b, renames)
    pdiff = plan_diff(side_a, side_b, renames)
    missing = [f"{s.label}: {s.results_note}" for s in (side_a, side_b) if s.results is None]
    if not results:
        note = "results not compared (--no-results)"
        return Diff(a, b, changes, pdiff, None, note, atol, rtol, renames)
    if missing:  # a side that has not run: the spec and plan layers still say what changed
        note = "; ".join(missing) + " (run `mispec run SPEC` to compare the results too)"
        return Diff(a, b, changes, pdiff, None, note, atol, rtol, renames)
    rdiff = results_diff(side_a.results, side_b.results, atol=atol, rtol=rtol, renames=renames)
    note = f"A: {side_a.results_note}; B: {side_b.results_note}"
    from mispec.diffing.claims_diff import claim_changes

    claims = claim_changes(side_a, side_b)
    return Diff(a, b, changes, pdiff, rdiff, note, atol, rtol, renames, claims)


def _same_models(a: Side, b: Side) -> bool:
    return bool(set(a.loaded.spec.models) & set(b.loaded.spec.models))
