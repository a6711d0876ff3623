"""Training control (issue 15): ``init_from`` a checkpoint, surgery on the initial weights,
``freeze``, task mixtures — each checked against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mispec
from mispec.models import checkpoints as ckpt
from mispec.models.native import key_map, load_bridge_state, plain_model, to_bridge_state
from mispec.models.runs import native_config, run_dir
from mispec.models.weight_targets import param_shapes
from mispec.sources import sources_for
from mispec.tasks import make_task
from mispec.tasks.mixture import Mixture, clashes
from mispec.validation.load import load_spec

ARCH = "{n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}"
SPEC = f"""\
mispec: 1
name: ft
models:
  base:
    train:
      task: modular_addition
      task_args: {{p: 11, train_frac: 0.5}}
      arch: {ARCH}
      steps: 12
      batch_size: 16
      optimizer: {{lr: 0.003, weight_decay: 0.1}}
    seeds: [0]
    checkpoints: {{steps: [0, 7, 12]}}
  tuned:
    train:
      task: modular_subtraction
      task_args: {{p: 11, train_frac: 0.5}}
      arch: {ARCH}
      steps: 6
      batch_size: 16
      optimizer: {{lr: 0.003, weight_decay: 0.1}}
      init_from: {{model: base, step: 7}}
    seeds: [0]
    checkpoints: {{steps: [0, 6]}}
prompts:
  add: {{generator: modular_addition, args: {{p: 11, train_frac: 0.5}}}}
metrics:
  loss: {{fn: loss, prompts: add}}
"""


def sources(path):
    loaded = load_spec(path)
    return sources_for(dict(loaded.spec.models), loaded.base_dir)


def saved(source, seed, step, store):
    folder = run_dir(source.train, seed, store, source.lineage(seed))
    return ckpt.read_tensors(folder / f"model_{step}.safetensors")[0]


def by_hand(start: dict[str, torch.Tensor], train, seed: int, n: int, optimizer=None):
    """``n`` AdamW updates of ``train``'s task from bridge-keyed weights ``start``, written
    out here from torch primitives (the reference for the trainer)."""
    kwargs = native_config(train, seed)
    keys = key_map(kwargs)
    model = plain_model(kwargs)
    load_bridge_state(model, start, keys)
    o = train.optimizer
    opt = torch.optim.AdamW(model.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    if optimizer is not None:
        opt.load_state_dict(
            {"state": optimizer["state"], "param_groups": opt.state_dict()["param_groups"]}
        )
    task = make_task(train.task, train.task_args)
    for t in range(n):
        b = task.batch(seed, t, train.batch_size)
        tokens, mask = torch.from_numpy(b.tokens), torch.from_numpy(b.loss_mask)
        loss = F.cross_entropy(model(tokens)[:, :-1][mask], tokens[:, 1:][mask])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return to_bridge_state(model, keys)


def assert_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------ init_from
def test_finetuned_checkpoint_equals_parent_to_k_then_finetuning_by_hand(write_spec, tmp_path):
    src = sources(write_spec(SPEC))
    store = tmp_path / "store"
    assert src["tuned"].prepare(0, [0, 3, 6], store, progress=False) == 7 + 6  # parent to 7
    parent_7 = saved(src["base"], 0, 7, store)
    assert_equal(saved(src["tuned"], 0, 0, store), parent_7)  # step 0 is the parent's step 7
    # the parent trained straight to 7 in another store, then 6 updates by hand
    other = tmp_path / "other"
    assert src["base"].prepare(0, [7], other, progress=False) == 7
    assert_equal(saved(src["base"], 0, 7, other), parent_7)
    expected = by_hand(parent_7, src["tuned"].train, 0, 6)
    assert_equal(saved(src["tuned"], 0, 6, store), expected)
    # and it did learn something else than the parent: the weights moved
    assert not torch.equal(expected["embed.weight"], parent_7["embed.weight"])


def test_carried_optimizer_continues_the_parent_exactly(write_spec, tmp_path):
    """Full-batch training on the parent's own task: ``optimizer: carry`` from step 5 then 4
    updates must equal the parent's step 9 bit for bit (a fresh optimizer must not)."""
    text = SPEC.replace("batch_size: 16", "batch_size: null").replace(
        "task: modular_subtraction", "task: modular_addition"
    )
    carry = text.replace("{model: base, step: 7}", "{model: base, step: 5, optimizer: carry}")
    src = sources(write_spec(carry, "carry.yaml"))
    store = tmp_path / "store"
    src["tuned"].prepare(0, [4], store, progress=False)
    src["base"].prepare(0, [9], store, progress=False)
    assert_equal(saved(src["tuned"], 0, 4, store), saved(src["base"], 0, 9, store))

    fresh = sources(write_spec(text.replace("step: 7}", "step: 5}"), "fresh.yaml"))
    fresh["tuned"].prepare(0, [4], store, progress=False)
    assert not torch.equal(
        saved(fresh["tuned"], 0, 4, store)["embed.weight"],
        saved(src["base"], 0, 9, store)["embed.weight"],
    )


def test_changing_only_the_finetuning_task_retrains_only_the_finetuned_model(write_spec):
    spec = write_spec(SPEC)
    first = mispec.run(spec, progress=False)
    assert first.counters["training_steps"] == 12 + 6  # base 0→12 (7 on the way), tuned 0→6
    before = mispec.plan(spec)
    old = "task: modular_subtraction\n      task_args: {p: 11, train_frac: 0.5}"
    spec.write_text(SPEC.replace(old, old.replace("0.5", "0.6")))
    after = mispec.plan(spec)
    series = lambda p, m: p.plan.resolution.series[(m, 0)].checkpoint_ids  # noqa: E731
    assert series(before, "base") == series(after, "base")
    assert set(series(before, "tuned")).isdisjoint(series(after, "tuned"))
    again = mispec.run(spec, progress=False)
    assert again.counters["training_steps"] == 6  # the tuned model only: 0 steps of base
    assert again.counters["cells_computed"] == 2  # tuned's two checkpoints; base's 3 cached
    assert again.counters["cells_cached"] == 3


def test_changing_the_parent_changes_the_child_identity(write_spec):
    keys = {}
    for lr in ("0.003", "0.004"):
        text = SPEC.replace("{lr: 0.003, weight_decay: 0.1}", f"{{lr: {lr}, weight_decay: 0.1}}", 1)
        src = sources(write_spec(text, f"lr{lr}.yaml"))
        keys[lr] = (src["base"].checkpoint_identity(0, 7), src["tuned"].checkpoint_identity(0, 3))
    assert keys["0.003"][0] != keys["0.004"][0] and keys["0.003"][1] != keys["0.004"][1]
    # renaming the parent changes neither
    text = SPEC.replace("  base:", "  pre:").replace("{model: base,", "{model: pre,")
    src = sources(write_spec(text, "renamed.yaml"))
    assert src["tuned"].checkpoint_identity(0, 3) == keys["0.003"][1]


def test_plan_trains_the_parent_first(write_spec):
    from mispec.planning.nodes import train_id

    work = mispec.plan(write_spec(SPEC)).plan.work()
    assert work.has_edge(train_id("base", 0), train_id("tuned", 0))


# ------------------------------------------------------------------ surgery and freeze
SURGERY = SPEC.replace(
    "      init_from: {model: base, step: 7}\n",
    """      init:
        - {op: copy, from: {model: base, step: 12}, heads: [[0, 1]], params: [embed.weight]}
        - {op: scale, factor: 0.5, params: [pos_embed.weight]}
        - {op: zero, heads: [[0, 0]]}
        - {op: randomize, seed: 5, params: [unembed.weight]}
      freeze: {heads: [[0, 0]], params: [embed.weight]}
""",
)


def test_surgery_builds_step_0_from_the_named_pieces(write_spec, tmp_path):
    src = sources(write_spec(SURGERY))
    store = tmp_path / "store"
    src["tuned"].prepare(0, [0], store, progress=False)
    got = saved(src["tuned"], 0, 0, store)
    donor = saved(src["base"], 0, 12, store)
    kwargs = native_config(src["tuned"].train, 0)
    fresh = to_bridge_state(plain_model(kwargs), key_map(kwargs))
    other = to_bridge_state(plain_model({**kwargs, "seed": 5}), key_map(kwargs))
    h1, h0 = slice(8, 16), slice(0, 8)  # d_head 8: head 1 is rows/columns 8..16
    for part in "qkv":
        w = f"blocks.0.attn.{part}.weight"
        assert torch.equal(got[w][h1], donor[w][h1])  # copied head 1
        assert torch.equal(got[w][h0], torch.zeros_like(got[w][h0]))  # zeroed head 0
        assert torch.equal(
            got[f"blocks.0.attn.{part}.bias"][h1], donor[f"blocks.0.attn.{part}.bias"][h1]
        )
    assert torch.equal(got["blocks.0.attn.o.weight"][:, h1], donor["blocks.0.attn.o.weight"][:, h1])
    assert torch.equal(got["blocks.0.attn.o.weight"][:, h0], torch.zeros(16, 8))
    assert torch.equal(got["blocks.0.attn.o.bias"], fresh["blocks.0.attn.o.bias"])  # shared
    assert torch.equal(got["embed.weight"], donor["embed.weight"])
    assert torch.equal(got["pos_embed.weight"], fresh["pos_embed.weight"] * 0.5)
    assert torch.equal(got["unembed.weight"], other["unembed.weight"])
    assert not torch.equal(other["unembed.weight"], fresh["unembed.weight"])
    assert torch.equal(got["ln_final.weight"], fresh["ln_final.weight"])


def test_frozen_entries_hold_and_a_knocked_out_head_stays_out(write_spec, tmp_path):
    src = sources(write_spec(SURGERY))
    store = tmp_path / "store"
    src["tuned"].prepare(0, [0, 6], store, progress=False)
    start, end = saved(src["tuned"], 0, 0, store), saved(src["tuned"], 0, 6, store)
    h0, h1 = slice(0, 8), slice(8, 16)
    for part in "qkv":
        w = f"blocks.0.attn.{part}.weight"
        assert torch.equal(end[w][h0], torch.zeros(8, 16))  # stays knocked out
        assert not torch.equal(end[w][h1], start[w][h1])  # the other head trains
    assert torch.equal(end["blocks.0.attn.o.weight"][:, h0], torch.zeros(16, 8))
    assert torch.equal(end["embed.weight"], start["embed.weight"])  # frozen (weight decay 0.1)
    assert not torch.equal(end["pos_embed.weight"], start["pos_embed.weight"])


def test_surgery_is_part_of_the_identity(write_spec):
    a = sources(write_spec(SURGERY, "a.yaml"))["tuned"].checkpoint_identity(0, 0)
    b = sources(write_spec(SURGERY.replace("factor: 0.5", "factor: 0.25"), "b.yaml"))
    c = sources(write_spec(SURGERY.replace("step: 12}, heads", "step: 11}, heads"), "c.yaml"))
    assert len({a, b["tuned"].checkpoint_identity(0, 0), c["tuned"].checkpoint_identity(0, 0)}) == 3


# ------------------------------------------------------------------ validation
BAD = [
    (
        "{model: base, step: 7}",
        "{model: bsae, step: 7}",
        "init_from.model",
        "unknown model 'bsae' (did you mean 'base'?)",
    ),
    (
        "{model: base, step: 7}",
        "{model: base, step: 13}",
        "init_from.step",
        "model 'base' has no step 13 (its steps: 0..12)",
    ),
    ("{model: base, step: 7}", "{model: tuned}", "init_from.model", "cycle: tuned -> tuned"),
    (
        "{model: base, step: 7}",
        "{model: base, seed: 4}",
        "init_from.seed",
        "model 'base' has no seed 4",
    ),
    (
        "{model: base, step: 7}",
        "{model: base, step: 7}\n      init: [{op: zero, heads: [[0, 2]]}]",
        "init[0].heads[0]",
        "head [0, 2] is out of range",
    ),
    (
        "{model: base, step: 7}",
        "{model: base, step: 7}\n      freeze: {params: [embed.wieght]}",
        "freeze.params[0]",
        "did you mean 'embed.weight'",
    ),
]


@pytest.mark.parametrize(("old", "new", "where", "message"), BAD)
def test_bad_relations_are_located_at_validate(write_spec, old, new, where, message):
    from mispec.errors import SpecError

    path = write_spec(SPEC.replace(old, new))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    lines = str(info.value).splitlines()
    hit = [line for line in lines if f"models.tuned.train.{where}:" in line]
    assert hit and message in hit[0], str(info.value)
    assert hit[0].split(":")[1].isdigit()  # file:line:col


def test_incompatible_shapes_name_each_parameter_and_both_shapes(write_spec):
    from mispec.errors import SpecError

    head, tail = SPEC.split("  tuned:")
    narrow = "{n_layers: 1, n_heads: 2, d_model: 16, d_head: 4, attn_only: true}"
    text = head + "  tuned:" + tail.replace(ARCH, narrow)
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    msg = str(info.value)
    assert "models.tuned.train.init_from.model: model 'base' does not fit" in msg
    assert "blocks.0.attn.q.weight: [16, 16] in 'base', [8, 16] here" in msg
    assert "blocks.0.attn.o.weight: [16, 16] in 'base', [16, 8] here" in msg
    assert "embed.weight" not in msg.replace("pos_embed", "").replace("unembed", "")


def test_param_shapes_match_the_models_state_dict():
    for extra in (
        {"attn_only": True, "normalization_type": "LN"},
        {"attn_only": False, "d_mlp": 24, "normalization_type": "RMS"},
        {"attn_only": True, "normalization_type": None, "positional_embedding_type": "rotary"},
    ):
        kw = dict(d_model=16, d_head=4, n_layers=2, n_heads=3, n_ctx=8, d_vocab=10, act_fn="relu")
        kw = {"positional_embedding_type": "standard", "seed": 0, **kw, **extra}
        state = to_bridge_state(plain_model(kw), key_map(kw))
        assert param_shapes(kw) == {k: tuple(v.shape) for k, v in state.items()}


# ------------------------------------------------------------------ tasks and mixtures
def test_modular_subtraction_and_division_answers():
    sub = make_task("modular_subtraction", {"p": 7, "eq_token": 9})
    t = sub.table.tokens
    assert sub.d_vocab == 10 and (t[:, 2] == 9).all() and len(t) == 49
    assert all(int(c) == (int(a) - int(b)) % 7 for a, b, _, c in t)
    div = make_task("modular_division", {"p": 7})
    t = div.table.tokens
    assert len(t) == 42 and set(t[:, 1].tolist()) == set(range(1, 7))
    assert all((int(c) * int(b)) % 7 == int(a) for a, b, _, c in t)
    with pytest.raises(mispec.errors.UserError, match="prime"):
        make_task("modular_division", {"p": 9})


def test_mixture_follows_its_schedule_and_vocabulary_rule():
    add = make_task("modular_addition", {"p": 5})
    rep = make_task("repeated_tokens", {"vocab": 8, "half_len": 3})
    mix = Mixture({"add": add, "rep": rep}, {"add": 1.0, "rep": 0.0}, [(4, {"rep": 1.0})], "offset")
    assert (mix.d_vocab, mix.n_ctx) == (6 + rep.d_vocab, rep.n_ctx)
    early, late = mix.batch(0, 3, 32), mix.batch(0, 4, 32)
    assert (early.extras["task"] == 0).all() and (late.extras["task"] == 1).all()
    assert early.tokens[:, :4].max() <= 5 and (early.tokens[:, 4:] == 0).all()  # padded
    assert not early.extras["training_loss_mask"][:, 3:].any()  # padding never scored
    assert late.tokens.min() >= 6  # rep's tokens start after add's 6
    both = Mixture({"add": add, "rep": rep}, {"add": 3.0, "rep": 1.0}, vocab="offset")
    share = np.mean([(both.batch(0, t, 64).extras["task"] == 0).mean() for t in range(40)])
    assert abs(share - 0.75) < 0.03
    assert np.array_equal(both.batch(1, 7, 16).tokens, both.batch(1, 7, 16).tokens)


def test_shared_vocabulary_clash_is_found():
    add = make_task("modular_addition", {"p": 5})
    same_eq = make_task("modular_subtraction", {"p": 5})
    own_eq = make_task("modular_subtraction", {"p": 5, "eq_token": 6})
    assert clashes(Mixture({"a": add, "s": same_eq}, {"a": 1, "s": 1}))
    assert clashes(Mixture({"a": add, "s": own_eq}, {"a": 1, "s": 1})) == []
    assert clashes(Mixture({"a": add, "s": same_eq}, {"a": 1, "s": 1}, vocab="offset")) == []


def test_init_from_a_path_folder(write_spec, tmp_path):
    """A ``path:`` parent (here: a folder of a run mispec trained) is read through its bridge."""
    store = tmp_path / "store"
    base = sources(write_spec(SPEC))["base"]
    base.prepare(0, [0, 7], store, progress=False)
    folder = run_dir(base.train, 0, store, None)
    head, tail = SPEC.split("  tuned:")
    text = head + f"  imported:\n    path: {folder}\n    seeds: [0]\n  tuned:" + tail
    text = text.replace("{model: base, step: 7}", "{model: imported, step: 7}")
    src = sources(write_spec(text, "path.yaml"))
    assert src["tuned"].depends_on(0) == [("imported", 0)]
    assert src["tuned"].prepare(0, [0, 2], store, progress=False) == 2
    assert_equal(saved(src["tuned"], 0, 0, store), saved(base, 0, 7, store))
    # the identity follows the folder's checkpoint: another step, another run
    other = sources(write_spec(text.replace("step: 7}", "step: 0}"), "path0.yaml"))
    assert other["tuned"].training_identity(0) != src["tuned"].training_identity(0)


def test_a_resumed_child_equals_a_straight_one(write_spec, tmp_path):
    """Surgery, freeze and a parent: resuming from a saved step gives the same bits."""
    src = sources(write_spec(SURGERY))
    straight, resumed = tmp_path / "a", tmp_path / "b"
    src["tuned"].prepare(0, [0, 6], straight, progress=False)
    src["tuned"].prepare(0, [0, 3], resumed, progress=False)
    assert src["tuned"].training_steps_left(0, [0, 3, 6], resumed) == 3
    assert src["tuned"].prepare(0, [6], resumed, progress=False) == 3  # from 3, parent kept
    assert_equal(saved(src["tuned"], 0, 6, resumed), saved(src["tuned"], 0, 6, straight))
