"""Which entries of a native toy model's weights a ``heads``/``params`` target names (no torch).

A mispec-trained model's checkpoint holds TransformerBridge keys (see
:mod:`mispec.models.native`). Their shapes follow from the TL-style config alone, which
lets validation check surgery, freezing and ``init_from`` before anything is built:

* ``embed.weight`` ``[d_vocab, d_model]``, ``pos_embed.weight`` ``[n_ctx, d_model]``
  (standard positions only), ``unembed.weight`` ``[d_vocab, d_model]``, ``unembed.bias``
  ``[d_vocab]``;
* per layer ``blocks.{l}.attn.{q,k,v}.weight`` ``[n_heads * d_head, d_model]`` (head ``h``
  is rows ``h * d_head … (h + 1) * d_head``), their biases ``[n_heads * d_head]``,
  ``blocks.{l}.attn.o.weight`` ``[d_model, n_heads * d_head]`` (head ``h``: those columns)
  and ``o.bias`` ``[d_model]`` (shared by the heads, so not part of one);
* ``ln1``/``ln2``/``ln_final`` weights (and biases for ``LN``) when the norm has weights;
  ``blocks.{l}.mlp.{in,out}.{weight,bias}`` unless ``attn_only``.

A *selection* maps a key to ``None`` (the whole tensor) or a list of ``(dim, start, stop)``
slices.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

Shapes = dict[str, tuple[int, ...]]
Selection = dict[str, list[tuple[int, int, int]] | None]

HEAD_PARTS = ("q", "k", "v", "o")


def param_shapes(cfg: dict[str, Any]) -> Shapes:
    """Every checkpoint key of a native model with TL-style config ``cfg`` and its shape."""
    d, v, heads = cfg["d_model"], cfg["d_vocab"], cfg["n_heads"] * cfg["d_head"]
    norm = cfg.get("normalization_type")
    norm_keys = {"LN": ("weight", "bias"), "RMS": ("weight",)}.get(norm or "", ())
    shapes: Shapes = {"embed.weight": (v, d)}
    if cfg.get("positional_embedding_type", "standard") == "standard":
        shapes["pos_embed.weight"] = (cfg["n_ctx"], d)
    for layer in range(cfg["n_layers"]):
        b = f"blocks.{layer}"
        shapes.update({f"{b}.ln1.{k}": (d,) for k in norm_keys})
        for part in ("q", "k", "v"):
            shapes[f"{b}.attn.{part}.weight"] = (heads, d)
            shapes[f"{b}.attn.{part}.bias"] = (heads,)
        shapes[f"{b}.attn.o.weight"] = (d, heads)
        shapes[f"{b}.attn.o.bias"] = (d,)
        if not cfg["attn_only"]:
            m = cfg["d_mlp"]
            shapes.update({f"{b}.ln2.{k}": (d,) for k in norm_keys})
            shapes.update({f"{b}.mlp.in.weight": (m, d), f"{b}.mlp.in.bias": (m,)})
            shapes.update({f"{b}.mlp.out.weight": (d, m), f"{b}.mlp.out.bias": (d,)})
    shapes.update({f"ln_final.{k}": (d,) for k in norm_keys})
    shapes.update({"unembed.weight": (v, d), "unembed.bias": (v,)})
    return shapes


def head_entries(layer: int, head: int, d_head: int) -> Selection:
    """The slices of head ``head`` of layer ``layer``: Q, K, V rows (and bias) and O columns."""
    lo, hi = head * d_head, (head + 1) * d_head
    b = f"blocks.{layer}.attn"
    out: Selection = {}
    for part in ("q", "k", "v"):
        out[f"{b}.{part}.weight"] = [(0, lo, hi)]
        out[f"{b}.{part}.bias"] = [(0, lo, hi)]
    out[f"{b}.o.weight"] = [(1, lo, hi)]
    return out


def select(
    heads: list[tuple[int, int]], params: list[str], cfg: dict[str, Any]
) -> tuple[Selection, list[tuple[str, int, str]]]:
    """The selection ``heads`` and ``params`` name in a model with config ``cfg``, and the
    problems as ``("heads" | "params", index, message)`` (a head out of range, a name that
    matches no parameter)."""
    from mispec.registry import did_you_mean

    shapes = param_shapes(cfg)
    problems: list[tuple[str, int, str]] = []
    out: Selection = {}
    for i, (layer, head) in enumerate(heads):
        if layer >= cfg["n_layers"] or head >= cfg["n_heads"]:
            message = (
                f"head [{layer}, {head}] is out of range: the model has {cfg['n_layers']} "
                f"layer(s) of {cfg['n_heads']} heads (both count from 0)"
            )
            problems.append(("heads", i, message))
            continue
        for key, slices in head_entries(layer, head, cfg["d_head"]).items():
            merge(out, key, slices)
    for i, pattern in enumerate(params):
        matched = [k for k in shapes if fnmatchcase(k, pattern)]
        if not matched:
            message = (
                f"parameter '{pattern}' matches none of this model's"
                f"{did_you_mean(pattern, list(shapes))} (they are: {', '.join(shapes)})"
            )
            problems.append(("params", i, message))
        for key in matched:
            out[key] = None
    return out, problems


def merge(out: Selection, key: str, slices: list[tuple[int, int, int]] | None) -> None:
    if slices is None or out.get(key, []) is None:
        out[key] = None
    else:
        out[key] = [*(out.get(key) or []), *slices]


def shape_mismatches(mine: Shapes, theirs: Shapes, *, parent: str) -> list[str]:
    """One line per parameter whose shape differs (or which only one side has)."""
    lines = []
    for key in sorted(set(mine) | set(theirs), key=list({**mine, **theirs}).index):
        a, b = mine.get(key), theirs.get(key)
        if a != b:
            lines.append(f"{key}: {_fmt(b)} in '{parent}', {_fmt(a)} here")
    return lines


def _fmt(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else "[" + ", ".join(map(str, shape)) + "]"


def info_shapes(info: Any) -> Shapes:
    """Shapes of the parameters every transformer's ``ModelInfo`` fixes (embeddings, one
    layer's attention and MLP, unembedding), for parents that are not trained by mispec."""
    cfg = {
        "d_model": info.d_model,
        "d_vocab": info.d_vocab,
        "n_heads": info.n_heads,
        "d_head": info.d_head,
        "n_layers": info.n_layers,
        "n_ctx": info.n_ctx,
        "attn_only": info.attn_only,
        "d_mlp": info.d_mlp,
        "normalization_type": None,
    }
    return {k: v for k, v in param_shapes(cfg).items() if not k.endswith(".bias")}
