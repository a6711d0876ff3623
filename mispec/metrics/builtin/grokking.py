"""Progress measures for grokking (Nanda et al. 2023, "Progress measures for grokking via
mechanistic interpretability", and their code in ``mechanistic-interpretability-grokking/
progress-measures-paper``).

A one-layer transformer that groks ``a + b mod p`` computes the answer with a few *key
frequencies* ``w_k = 2πk/p``: it embeds ``a`` and ``b`` as ``cos(w_k a), sin(w_k a)``, its MLP
neurons compute ``cos(w_k(a+b))`` and ``sin(w_k(a+b))``, and the logit of ``c`` is a sum of
``cos(w_k(a+b-c))``. These metrics measure that circuit over training, on the whole ``p × p``
table in row-major order (row ``a * p + b``: the ``modular_addition`` task's prompt set) at
the ``=`` position (the ``answer_pos`` extra): ``key_frequencies`` reads the MLP neurons there,
``restricted_loss`` and ``excluded_loss`` the logits there. Logits are those
of the ``p`` number tokens (the ``=`` token's output column is left out, as in the paper's
code), in float64.

**Fourier basis.** Over ``x = 0 … p-1``: the constant ``1/√p`` and, for ``k = 1 …
(p-1)//2``, ``cos(w_k x)`` and ``sin(w_k x)`` normalised to unit norm (for an even ``p`` the
alternating direction ``k = p/2`` is left out of every frequency below). Over the table, the
*direction* of frequency ``k`` is the plane of the unit vectors ``cos(w_k(a+b))`` and
``sin(w_k(a+b))`` in ``R^(p²)``; the paper's ``get_component_cos_xpy`` builds exactly these
as ``(cos_a cos_b - sin_a sin_b)/√2``.

* ``key_frequencies`` (the paper's ``calculate_key_freqs``, with its 0.85 cluster
  threshold): centre each MLP neuron's activations at ``=`` over the table, write them in the
  2D Fourier basis over ``(a, b)``, and take for each neuron the frequency ``k`` whose
  linear and quadratic terms (the 3 × 3 block of the basis indices ``{0, cos k, sin k}``)
  hold the largest share of its variance. The result counts, per frequency, the neurons
  whose best frequency it is with a share of at least ``min_share``; the key frequencies are
  those with a count of at least one. Neurons with no variance (dead ReLUs) count nowhere.
  (``calculate_key_freqs`` in the paper's repository keeps every neuron's best frequency —
  ``min_share: 0`` — and its loop stops below ``(p-1)//2``; 0.85 is the paper's threshold
  for a neuron to belong to a frequency's cluster.)
* ``restricted_loss`` (the paper's ``calculate_trig_loss``): the logits projected, for every
  output ``c``, onto the directions of the key frequencies (all other components removed),
  plus a bias correction (the mean over the table of ``original - projected`` is added back
  per output, as the paper's ``test_logits(bias_correction=True)`` does); cross-entropy on
  ``split`` (default ``all``: the whole table). It falls as the generalising circuit forms,
  before the test loss does.
* ``excluded_loss`` (the paper's ``calculate_excluded_loss_2D_full``): the logits minus their
  projections onto the key-frequency directions, no bias correction; cross-entropy on
  ``split`` (default ``train``). It rises during circuit formation: the memorising solution
  comes to rely on the generalising one.
* ``fourier_sparsity``: the Gini coefficient of the norms of the Fourier components of the
  embedding ``W_E`` (rows of the ``p`` number tokens, a norm per basis vector over
  ``d_model``) and of the neuron-logit map ``W_L = W_out W_U`` (columns of the ``p`` number
  tokens, a norm per basis vector over the neurons); 0 for a flat spectrum, near 1 for one
  frequency — the paper's sparsity measure of ``W_E`` and ``W_L`` in the Fourier basis.

The key frequencies are meant to be chosen once, at a reference checkpoint (the last: the
grokked model) and used at every step; a spec wires them in with an input from that step.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from mispec.errors import PromptError, UserError
from mispec.lazy import torch, xr
from mispec.metrics.builtin._common import SPLITS, check_choice, extra, tensor
from mispec.metrics.builtin.fourier import (
    fourier_basis,
    frequencies_of,
    gini,
    key_frequency_part,
    neuron_frequency_counts,
)
from mispec.metrics.core import InputDims, metric


# --------------------------------------------------------------------------- the table
def table_of(prompts: Any, name: str) -> tuple[int, np.ndarray, np.ndarray]:
    """``(p, answer [p*p], answer_pos [p*p])`` of a modular-addition table prompt set, or a
    ``PromptError`` saying what the metric needs."""
    tokens = np.asarray(prompts.tokens)
    n = tokens.shape[0]
    p = int(round(np.sqrt(n)))
    a, b = np.divmod(np.arange(n), max(p, 1))
    if (
        p * p != n
        or tokens.shape[1] < 3
        or not (np.array_equal(tokens[:, 0], a) and np.array_equal(tokens[:, 1], b))
    ):
        raise PromptError(
            f"{name} reads the whole table of a mod-p task in row-major order (row a*p + b, "
            "tokens [a, b, =, ...], e.g. the modular_addition task's prompt set); this "
            f"prompt set has {n} prompts of {tokens.shape[1]} tokens that are not that table"
        )
    answer = extra(prompts, "answer", why=name).astype(np.int64)
    if not np.array_equal(answer, (a + b) % p):
        raise PromptError(
            f"{name} measures the a + b mod p circuit (directions cos(w(a+b))); the 'answer' "
            "extra of this prompt set is not (a + b) mod p"
        )
    extras = getattr(prompts, "extras", {}) or {}
    pos = np.asarray(extras.get("answer_pos", np.full(n, 2)), dtype=np.int64)
    return p, answer, pos


def table_logits(logits: Any, name: str) -> tuple[int, np.ndarray, np.ndarray, Any]:
    """``(p, logits [p*p, p] float64 over the number tokens, answer [p*p], the input)`` from
    the answer-position logits of a mod-p table (``[batch, vocab]`` with the ``answer`` and
    ``train_mask`` coordinates, as the ``logits`` metric returns them), or a ``PromptError``
    saying what the metric needs."""
    if not isinstance(logits, xr.DataArray) or set(logits.dims) != {"batch", "vocab"}:
        dims = getattr(logits, "dims", None)
        raise UserError(f"{name}: 'logits' must be the logits metric's result, got dims {dims}")
    logits = logits.transpose("batch", "vocab")
    n = logits.sizes["batch"]
    p = int(round(np.sqrt(n)))
    if "answer" not in logits.coords:
        raise PromptError(f"{name}: the logits carry no 'answer' (a prompt set without it?)")
    answer = np.asarray(logits["answer"].values).astype(np.int64)
    a, b = np.divmod(np.arange(n), max(p, 1))
    if p * p != n or logits.sizes["vocab"] < p or not np.array_equal(answer, (a + b) % p):
        raise PromptError(
            f"{name} reads the whole table of a + b mod p in row-major order (row a*p + b, "
            f"answer (a + b) mod p: the modular_addition task's prompt set); these {n} logits "
            "are not that table"
        )
    values = np.asarray(logits.values, dtype=np.float64)[:, :p]
    return p, values, answer, logits


def split_rows(logits: Any, split: str, name: str) -> np.ndarray:
    """Bool ``[batch]``: the rows of ``split`` (``train`` / ``test`` by the ``train_mask``
    coordinate the ``logits`` metric copies from the prompt set, or ``all``)."""
    check_choice("split", split, SPLITS)
    n = logits.sizes["batch"]
    if split == "all":
        return np.ones(n, dtype=bool)
    if "train_mask" not in logits.coords:
        raise PromptError(f"{name}: split '{split}' needs the prompt extra 'train_mask'")
    train = np.asarray(logits["train_mask"].values).astype(bool)
    return train if split == "train" else ~train


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of ``logits [n, classes]`` (float64) against ``labels [n]``; NaN
    for no rows."""
    if logits.shape[0] == 0:
        return float("nan")
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def key_set(frequencies: Any, p: int, name: str) -> np.ndarray:
    """The key frequencies marked by ``frequencies`` (a ``freq`` series whose non-zero
    entries are the key ones, e.g. ``key_frequencies``' neuron counts)."""
    if not isinstance(frequencies, xr.DataArray) or frequencies.dims != ("freq",):
        dims = getattr(frequencies, "dims", None)
        raise UserError(f"{name}: 'frequencies' must be a series over 'freq', got dims {dims}")
    coords = frequencies["freq"].values if "freq" in frequencies.coords else None
    if coords is None:
        raise UserError(f"{name}: 'frequencies' has no 'freq' coordinate")
    values = np.asarray(frequencies.values, dtype=float)
    keys = np.asarray(coords)[np.nan_to_num(values) != 0].astype(int)
    bad = [int(k) for k in keys if not 1 <= k <= (p - 1) // 2]
    if bad:
        raise UserError(f"{name}: key frequencies {bad} are outside 1..{(p - 1) // 2} (p = {p})")
    return np.unique(keys)


def _freq_result(values: np.ndarray, p: int, **attrs: Any) -> Any:
    return xr.DataArray(values, dims=("freq",), coords={"freq": frequencies_of(p)}, attrs=attrs)


# --------------------------------------------------------------------------- metrics
@metric(
    dims=("freq",),
    hooks=("blocks.{layer}.mlp.hook_post",),
    units="neurons",
    extras=("answer",),
    indexes={"layer": "layer"},
    version=2,  # 2: the Fourier transform contracted pairwise (last bits may differ)
)
def key_frequencies(acts: Any, prompts: Any, layer: int = 0, min_share: float = 0.85) -> Any:
    """Per frequency ``k = 1 … (p-1)//2``, how many MLP neurons of ``layer`` have ``k`` as
    their best frequency with at least ``min_share`` of their variance over the table in its
    2D Fourier terms (see the module docstring); the key frequencies are those with a count
    > 0. ``attrs``: the fraction of live neurons so explained (``explained_neurons``).

    Args:
        layer: the block whose MLP neurons (``mlp.hook_post`` at the answer position) are counted
            (default 0).
        min_share: the least share of a neuron's variance over the table, in [0, 1], that its best
            frequency's 2D Fourier terms must explain for it to count (default 0.85).
    """
    if not 0 <= min_share <= 1:
        raise UserError(f"key_frequencies: min_share must be in [0, 1], got {min_share}")
    p, _, pos = table_of(prompts, "key_frequencies")
    post = tensor(acts["blocks.{layer}.mlp.hook_post"])  # [layer, batch, pos, neuron]
    if not 0 <= layer < post.shape[0]:
        raise UserError(f"key_frequencies: layer {layer} is not in 0..{post.shape[0] - 1}")
    x = post[layer][torch.arange(post.shape[1]), torch.as_tensor(pos)].double().numpy()
    counts, explained = neuron_frequency_counts(x, p, min_share)
    return _freq_result(counts, p, explained_neurons=explained)


def _restricted_excluded(
    acts: Any, prompts: Any, frequencies: Any, split: str, name: str, keep: bool
) -> float:
    from mispec.metrics.builtin.phases import answer_logits

    check_choice("split", split, SPLITS)
    p, values, answer, arr = table_logits(answer_logits(acts, prompts), name)
    keys = key_set(frequencies, p, name)
    part = key_frequency_part(values, p, keys)
    if keep:  # only the key directions, plus the paper's bias correction
        new = part + (values - part).mean(axis=0, keepdims=True)
    else:
        new = values - part
    rows = split_rows(arr, split, name)
    return cross_entropy(new[rows], answer[rows])


def _split_extras(split: str = "all") -> tuple[str, ...]:
    return ("answer",) + (("train_mask",) if split != "all" else ())


def _train_split_extras(split: str = "train") -> tuple[str, ...]:
    return _split_extras(split)


_FREQUENCIES = {"frequencies": InputDims(("freq",), why="a series over 'freq' (key_frequencies)")}


@metric(
    dims=(),
    hooks=("logits",),
    inputs=("frequencies",),
    input_dims=_FREQUENCIES,
    units="nats",
    extras=_split_extras,
)
def restricted_loss(
    acts: Any, prompts: Any, frequencies: Any, split: Literal["all", "train", "test"] = "all"
) -> float:
    """Cross-entropy (nats, on ``split``; default the whole table) of the logits restricted to
    the key-frequency directions ``cos/sin(w_k(a+b))`` with the paper's bias correction (see the
    module docstring). ``frequencies``: a ``freq`` series whose non-zero entries are the key
    frequencies (``key_frequencies``, chosen at a reference step: ``{metric: freqs, step:
    last}``).

    Args:
        split: ``train`` / ``test``: only the (a, b) pairs whose ``train_mask`` extra is True /
            False; ``all``: the whole table. Default ``all``.
    """
    return _restricted_excluded(acts, prompts, frequencies, split, "restricted_loss", keep=True)


@metric(
    dims=(),
    hooks=("logits",),
    inputs=("frequencies",),
    input_dims=_FREQUENCIES,
    units="nats",
    extras=_train_split_extras,
)
def excluded_loss(
    acts: Any, prompts: Any, frequencies: Any, split: Literal["all", "train", "test"] = "train"
) -> float:
    """Cross-entropy (nats, on ``split``; default the training pairs) of the logits with their
    key-frequency directions ``cos/sin(w_k(a+b))`` removed (see the module docstring).

    Args:
        split: ``train`` / ``test``: only the (a, b) pairs whose ``train_mask`` extra is True /
            False; ``all``: the whole table. Default ``train``.
    """
    return _restricted_excluded(acts, prompts, frequencies, split, "excluded_loss", keep=False)


@metric(dims=("component",), units="gini", indexes={"layer": "layer"})
def fourier_sparsity(bridge: Any, p: int, layer: int = 0) -> Any:
    """Gini coefficient of the Fourier-component norms of the embedding (component ``embed``)
    and of the neuron-logit map ``W_out[layer] W_U`` (component ``neuron_logit``), over the
    ``p`` number tokens (see the module docstring); NaN for ``neuron_logit`` without MLPs.

    Args:
        p: the modulus: the first ``p`` tokens are the numbers (between 2 and the vocabulary size).
        layer: the block whose ``W_out`` gives the ``neuron_logit`` map (default 0).
    """
    w_e = bridge.W_E.detach().to("cpu", torch.float64).numpy()  # [d_vocab, d_model]
    if not 2 <= p <= w_e.shape[0]:
        raise UserError(f"fourier_sparsity: p={p} must be between 2 and d_vocab={w_e.shape[0]}")
    basis = fourier_basis(p)
    values = [gini(np.linalg.norm(basis @ w_e[:p], axis=1))]
    w_out = getattr(bridge, "W_out", None) if not bridge.cfg.attn_only else None
    if w_out is None:
        values.append(float("nan"))
    else:
        if not 0 <= layer < w_out.shape[0]:
            raise UserError(f"fourier_sparsity: layer {layer} is not in 0..{w_out.shape[0] - 1}")
        w_u = bridge.W_U.detach().to("cpu", torch.float64).numpy()[:, :p]  # [d_model, p]
        w_l = w_out[layer].detach().to("cpu", torch.float64).numpy() @ w_u  # [d_mlp, p]
        values.append(gini(np.linalg.norm(w_l @ basis.T, axis=0)))
    return xr.DataArray(
        np.array(values),
        dims=("component",),
        coords={"component": np.array(["embed", "neuron_logit"], dtype=object)},
    )
