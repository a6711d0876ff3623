"""The three studies that relate models (issue 15), validated, planned and run at a small size:
``specs/finetuning.yaml``, ``specs/lottery_ticket.yaml`` and ``specs/multitask.yaml``.

Each is shrunk (tiny architecture, a handful of steps, p = 7) but keeps its structure: the
same models, relations and metrics. The checks compare values that must agree for a reason
the study's design gives (a fine-tuned model's step 0 is its parent's last step; a knocked-out
head's attention never changes; models with one architecture and seed start equal), and the
fine-tuning study's parent -> fine-tuned patching equals a hook patch written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import mispec
from mispec.planning.nodes import TrainNode, train_id
from mispec.validation.load import load_spec
from tests.system.test_pairs import hand_head_patch_loss, load_checkpoint

SPECS = Path(__file__).resolve().parents[2] / "specs"
TINY_MLP = {"n_layers": 1, "n_heads": 2, "d_model": 16, "d_head": 8, "d_mlp": 32, "d_vocab": 9}
MODULAR = {"p": 7, "train_frac": 0.6}


def shrunk(name: str, folder: Path, edit) -> Path:
    """``specs/<name>`` with ``edit(data)`` applied, written into ``folder``."""
    data = json.loads(json.dumps(yaml.safe_load((SPECS / name).read_text())))  # no aliases
    edit(data)
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def modular_args(args: dict) -> dict:
    return {**args, **MODULAR, **({"eq_token": 8} if "eq_token" in args else {})}


def small_modular(train: dict, steps: int) -> None:
    train.update(arch=dict(TINY_MLP), steps=steps, batch_size=16)
    if "mixture" in train:
        for part in train["mixture"]["tasks"].values():
            part["task_args"] = modular_args(part["task_args"])
    else:
        train["task_args"] = modular_args(train["task_args"])


def small_prompts(data: dict) -> None:
    for prompt in data["prompts"].values():
        prompt["args"] = modular_args(prompt["args"])


def dataset(result, model: str):
    return mispec.open_results(result.run_dir)[model].to_dataset()


def train_edges(plan) -> set[tuple[str, str]]:
    work = plan.work()
    trains = {n.id for n in plan.nodes(TrainNode)}
    return {(u, v) for u, v in work.edges if u in trains and v in trains}


def test_finetuning_study(tmp_path):
    def edit(data):
        for name, model in data["models"].items():
            small_modular(model["train"], 12 if name == "base" else 6)
            model["seeds"] = [0]
            model["checkpoints"] = {"steps": [0, 6, 12] if name == "base" else [0, 3, 6]}
        small_prompts(data)

    spec = shrunk("finetuning.yaml", tmp_path, edit)
    load_spec(spec)  # validates
    plan = mispec.plan(spec).plan
    assert train_edges(plan) == {
        (train_id("base", 0), train_id("switched", 0)),
        (train_id("base", 0), train_id("mixed", 0)),
    }
    result = mispec.run(spec, progress=False)
    assert result.counters["training_steps"] == 12 + 6 + 6
    base = dataset(result, "base")
    for child in ("switched", "mixed"):
        ds = dataset(result, child)
        for var in ("add_loss", "sub_loss", "add_accuracy", "sub_accuracy"):
            # the fine-tuned model's step 0 is the base model's last step, weights and all
            assert ds[var].sel(step=0).item() == base[var].sel(step=12).item(), (child, var)
        assert ds.sub_loss.sel(step=6).item() != base.sub_loss.sel(step=12).item()
        # no weight has moved from the parent at step 0; every component and head has by 6
        change = mispec.open_results(result.run_dir)[f"{child}_vs_base"].to_dataset()
        moved = change[f"{child}_change"].sel(seed=0, step_b=12)
        assert (moved.sel(step=0) == 0).all() and (moved.sel(step=6) > 0).all()
        assert (ds.head_change.sel(step=0) == 0).all() and (ds.head_change.sel(step=6) > 0).all()
    assert dataset(result, "mixed").sub_learnt.dims == ("seed",)
    check_parent_patching(spec, result)


def modular_table(op, eq: int) -> torch.Tensor:
    """Every ``[a, b, =, op(a, b) mod p]`` of the p = 7 table in row-major order, by hand."""
    a, b = np.divmod(np.arange(49), 7)
    return torch.as_tensor(np.stack([a, b, np.full(49, eq), op(a, b) % 7], axis=1))


def check_parent_patching(spec: Path, result) -> None:
    """Each head of the base's last checkpoint patched into ``switched`` (the spec's
    ``cross_model_patching`` cells) against a hook patch written in the tests, on the same
    two checkpoints: the fraction of the loss gap recovered, answers only."""
    comp = mispec.open_results(result.run_dir)["switched_vs_base"].to_dataset()
    answer_only = np.zeros((49, 3))
    answer_only[:, 2] = 1  # only the prediction at `=` counts (loss_mask)
    base, child = load_checkpoint(spec, "base", 0, 12), load_checkpoint(spec, "switched", 0, 6)
    for var, op, eq in (("sub_parent_patch", np.subtract, 8), ("add_parent_patch", np.add, 7)):
        got = comp[var]
        assert got.dims == ("seed", "step", "step_b", "layer", "head"), var
        assert np.isnan(got.sel(step=0).values).all()  # step 0 is the parent: no gap
        tokens = modular_table(op, eq)
        loss_a = hand_head_patch_loss(child, child, tokens, 0, 0, answer_only)  # unpatched
        loss_b = hand_head_patch_loss(base, base, tokens, 0, 0, answer_only)
        assert abs(loss_b - loss_a) > 1e-2, (var, loss_a, loss_b)  # a gap worth normalising by
        for head in (0, 1):
            patched = hand_head_patch_loss(child, base, tokens, 0, head, answer_only)
            cell = got.sel(seed=0, step=6, step_b=12, layer=0, head=head).item()
            assert cell == pytest.approx((patched - loss_a) / (loss_b - loss_a), abs=1e-5)


def test_lottery_ticket_study(tmp_path):
    def edit(data):
        for name, model in data["models"].items():
            train = model["train"]
            train.update(
                task_args={"vocab": 16, "half_len": 6, "min_len": 3},
                arch={"n_layers": 2, "n_heads": 2, "d_model": 16, "d_head": 8, "attn_only": True},
                steps=8 if name == "donor" else 6,
                batch_size=8,
            )
            if name != "donor":
                model["seeds"] = [0]
                model["checkpoints"] = {"steps": [0, 2, 4, 6]}
        data["prompts"]["repeats"]["args"] = {"n": 8, "vocab": 16, "half_len": 6}

    spec = shrunk("lottery_ticket.yaml", tmp_path, edit)
    load_spec(spec)
    plan = mispec.plan(spec).plan
    assert train_edges(plan) == {
        (train_id("donor", 7), train_id("transplanted", 0)),
        (train_id("donor", 7), train_id("transplanted_embed", 0)),
    }
    result = mispec.run(spec, progress=False)
    assert result.counters["training_steps"] == 8 + 4 * 6
    out, fresh = dataset(result, "knocked_out"), dataset(result, "fresh")
    for metric, layer, head in (("induction", 1, 0), ("prev_token", 0, 1)):
        knocked = out[metric].sel(seed=0, layer=layer, head=head).values
        # zero Q and K: uniform attention at every step, whatever the rest of the model does
        assert np.all(knocked == knocked[0]), (metric, knocked)
        moving = fresh[metric].sel(seed=0, layer=layer, head=head).values
        assert not np.all(moving == moving[0])  # the same head of the fresh model trains
    for model in ("fresh", "transplanted", "transplanted_embed", "knocked_out"):
        assert dataset(result, model).transition.dims == ("seed",)


def test_multitask_study(tmp_path):
    def edit(data):
        for model in data["models"].values():
            small_modular(model["train"], 6)
            model["seeds"] = [0]
            model["checkpoints"] = {"steps": [0, 3, 6]}
        small_prompts(data)

    spec = shrunk("multitask.yaml", tmp_path, edit)
    load_spec(spec)
    result = mispec.run(spec, progress=False)
    assert result.counters["training_steps"] == 3 * 6
    both, add, sub = (dataset(result, m) for m in ("both", "add_only", "sub_only"))
    assert "sub_loss" not in add and "add_loss" not in sub
    # one architecture and seed: the three start from the same weights ...
    assert both.add_loss.sel(step=0).item() == add.add_loss.sel(step=0).item()
    assert both.sub_loss.sel(step=0).item() == sub.sub_loss.sel(step=0).item()
    # ... and train on different data
    assert both.add_loss.sel(step=6).item() != add.add_loss.sel(step=6).item()


def test_a_mixture_with_clashing_tasks_is_refused(tmp_path):
    from mispec.errors import SpecError

    def edit(data):
        data["models"]["both"]["train"]["mixture"]["tasks"]["sub"]["task_args"].pop("eq_token")

    spec = shrunk("multitask.yaml", tmp_path, edit)
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert "models.both.train.mixture.vocab" in str(info.value)
    assert "tasks 'add' and 'sub' ask for different next tokens" in str(info.value)
