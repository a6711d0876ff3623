"""What every result coordinate means: its ``long_name`` and ``units`` (xarray's convention,
which its plots and tools such as cf-xarray read). ``mispec.results.assemble`` writes them on
every coordinate of the results; the plots label their axes from them."""

from __future__ import annotations

# coordinate -> (long_name, units)
COORD_ATTRS: dict[str, tuple[str, str]] = {
    "model": ("model", "name in the spec"),
    "seed": ("training seed", "seed"),
    "step": ("training step", "optimizer updates"),
    "tokens_seen": ("tokens seen in training", "tokens"),
    "layer": ("layer", "block index"),
    "head": ("attention head", "head index"),
    "pos": ("token position", "tokens from the start"),
    "batch": ("prompt", "prompt index"),
    "neuron": ("MLP neuron", "neuron index"),
    "component": ("weight component", "name"),
    "freq": ("Fourier frequency", "cycles over the vocabulary"),
    "src_layer": ("source layer (earlier head)", "block index"),
    "src_head": ("source head", "head index"),
    "dst_layer": ("destination layer (later head)", "block index"),
    "dst_head": ("destination head", "head index"),
    "pc": ("principal component", "rank (1 = most variance)"),
    "mode": ("composition mode", "name"),
    "split": ("data split", "name"),
    "digit": ("digit position", "index"),
    # sweep dims (``mispec.spec.sweep``): a key of ``train:`` by its last component
    "lr": ("learning rate", "per update"),
    "weight_decay": ("weight decay", "coefficient"),
    "train_frac": ("training fraction", "fraction of the task's examples"),
    "p": ("modulus", "integer"),
    "n_layers": ("layers", "blocks"),
    "n_heads": ("attention heads per layer", "heads"),
    "d_model": ("residual stream width", "dimensions"),
    "d_head": ("attention head width", "dimensions"),
    "d_mlp": ("MLP width", "neurons"),
    "steps": ("training length", "optimizer updates"),
    "batch_size": ("batch size", "sequences per update"),
    "warmup_steps": ("learning-rate warmup", "optimizer updates"),
    "init_range": ("initialisation std", "weight units"),
    "momentum": ("SGD momentum", "coefficient"),
}


def coord_attrs(name: str) -> dict[str, str]:
    """``{"long_name": ..., "units": ...}`` of a coordinate (its own name when unknown)."""
    long_name, units = COORD_ATTRS.get(name, (name, ""))
    return {"long_name": long_name, "units": units}


def axis_label(name: str) -> str:
    """``long name [units]`` for an axis."""
    a = coord_attrs(name)
    return f"{a['long_name']} [{a['units']}]" if a["units"] else a["long_name"]
