"""Tasks own their prompts, seen from outside the package: a plugin task — a module of
``tests/helpers``, a file beside the spec, or an entry point — trains a ``train:`` model and
is the prompt generator of the same spec, with no generator written for it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import mispec
from mispec.errors import SpecError
from mispec.prompts.core import PromptSet
from mispec.prompts.generators import GENERATORS
from mispec.registry import UnknownNameError
from mispec.tasks import TASKS, make_task
from mispec.tasks.generators import PROMPT_GENERATORS
from tests.helpers.reverse_task import Reverse
from tests.reliability_helpers import cli, cli_env

HELPER = "tests.helpers.reverse_task:reverse"

SPEC = """\
mispec: 1
name: reverse
models:
  toy:
    train:
      task: {task}
      task_args: {{length: 4, vocab: 8}}
      arch: {{n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}}
      steps: 20
      batch_size: 16
    seeds: [0]
    checkpoints: {{steps: [0, 20]}}
prompts:
  rev:
    generator: {task}
    args: {{{args}}}
    seed: 5
metrics:
  loss: {{fn: loss, prompts: rev, args: {{mask: none}}}}   # every prediction
  reversed_loss: {{fn: loss, prompts: rev, args: {{mask: loss_mask}}}}
"""


def spec_text(task: str = HELPER, args: str = "n: 6, length: 4, vocab: 8") -> str:
    return SPEC.format(task=task, args=args)


@pytest.fixture
def registries(monkeypatch, tmp_path):
    """Registries as they were before the test; plugin modules imported from ``tmp_path``
    are forgotten after it."""
    for registry in (TASKS, GENERATORS, PROMPT_GENERATORS):
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    yield
    roots = (str(tmp_path), str(tmp_path.resolve()))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(roots):
            del sys.modules[name]


def hand_losses(spec: Path, prompts: PromptSet) -> dict[int, tuple[float, float]]:
    """(mean loss over every prediction, over the reversed half) of the trained model at
    each checkpoint, computed here from its logits."""
    import torch

    from mispec.sources import source_for

    model = mispec.load_spec(spec).spec.models["toy"]
    handle = source_for("toy", model, spec.parent).open(0, spec.parent / ".mispec")
    tokens = torch.from_numpy(prompts.tokens)
    mask = torch.from_numpy(prompts.extras["loss_mask"])
    out = {}
    for step in (0, 20):
        with torch.no_grad():
            logits = handle.load(step)(tokens).double()
        logprob = torch.log_softmax(logits, -1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        out[step] = (-logprob.mean().item(), -logprob[mask].mean().item())
    handle.close()
    return out


def check_run(spec: Path) -> None:
    """Run the spec; its prompt set is the task's own, and its losses are the hand ones."""
    result = mispec.run(spec, progress=False)
    prompts = Reverse(length=4, vocab=8).prompt_set(6, 5)  # the task's own prompt set
    tokens = prompts.tokens
    assert tokens.shape == (6, 10)
    assert (tokens[:, 0] == 8).all() and (tokens[:, 5] == 9).all()  # BOS, SEP
    assert (tokens[:, 6:] == tokens[:, 1:5][:, ::-1]).all()
    ds = result.open()["toy"].to_dataset()
    assert ds.step.values.tolist() == [0, 20]
    for step, (every, reversed_half) in hand_losses(spec, prompts).items():
        np.testing.assert_allclose(ds.loss.sel(seed=0, step=step).item(), every, rtol=1e-5)
        np.testing.assert_allclose(
            ds.reversed_loss.sel(seed=0, step=step).item(), reversed_half, rtol=1e-5
        )
    assert ds.reversed_loss.sel(seed=0, step=20) < ds.reversed_loss.sel(seed=0, step=0)


def test_a_plugin_task_trains_a_model_and_is_its_prompt_generator(write_spec, registries):
    check_run(write_spec(spec_text()))
    generator = PROMPT_GENERATORS.get(HELPER)
    assert generator.params["n"][0] == 16  # the task's own default prompt count
    default = generator(seed=5, length=4, vocab=8)
    assert default.n == 16
    np.testing.assert_array_equal(default.tokens, Reverse().prompt_set(16, 5).tokens)
    assert default.meta == {"task": "reverse", "d_vocab": 10, "n_ctx": 10, "length": 4, "vocab": 8}


def test_a_plugin_tasks_generator_args_are_validated(write_spec, registries):
    spec = write_spec(spec_text(args="n: 6, lenght: 4"))
    with pytest.raises(SpecError) as err:
        mispec.load_spec(spec)
    assert (
        f"prompts.rev.args.lenght: generator '{HELPER}' takes no argument 'lenght' "
        "(did you mean 'length'?)"
    ) in str(err.value)
    spec = write_spec(spec_text(args="n: many"), "typed.yaml")
    with pytest.raises(SpecError, match=r"prompts.rev.args.n: Input should be a valid integer"):
        mispec.load_spec(spec)
    missing = spec_text().replace(f"task: {HELPER}", "task: no_such_task_module:reverse")
    with pytest.raises(SpecError, match=r"spec.yaml:6:13: models.toy.train.task: cannot import"):
        mispec.load_spec(write_spec(missing))


PLUGIN = (Path(__file__).parents[1] / "helpers" / "reverse_task.py").read_text()


def test_plugin_tasks_resolve_beside_the_spec(write_spec, tmp_path, monkeypatch, registries):
    """``beside_reverse.py`` next to the spec, the working directory elsewhere and the spec's
    folder not on ``sys.path``: validation, planning, training and the run all find it."""
    (tmp_path / "beside_reverse.py").write_text(PLUGIN)
    spec = write_spec(spec_text(task="beside_reverse:reverse"))
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    check_run(spec)
    assert str(tmp_path) not in sys.path and str(tmp_path.resolve()) not in sys.path
    # a fresh process (validation, then resolve's training identity), from another folder
    res = cli("plan", str(spec), "--format", "json", cwd=elsewhere, env=cli_env())
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["key"] == mispec.plan(spec).plan.key


def test_entry_point_tasks_and_generators_share_one_namespace(monkeypatch, registries):
    import importlib.metadata as md

    def constant(*, seed: int, n: int = 2, token: int = 3) -> PromptSet:
        return PromptSet(tokens=np.full((n, 4), token, dtype=np.int64))

    class EP:
        def __init__(self, name: str, obj: object):
            self.name, self.value, self._obj = name, f"pkg:{name}", obj

        def load(self) -> object:
            return self._obj

    groups = {
        "mispec.tasks": [EP("reverse_ep", Reverse)],
        "mispec.generators": [EP("constant", constant)],
    }
    monkeypatch.setattr(md, "entry_points", lambda group: groups.get(group, []))
    monkeypatch.setattr(TASKS, "_entry_points_loaded", False)
    monkeypatch.setattr(GENERATORS, "_entry_points_loaded", False)

    assert make_task("reverse_ep", {"length": 3}).n_ctx == 8
    ps = PROMPT_GENERATORS.get("reverse_ep")(seed=2, n=5, length=3)
    np.testing.assert_array_equal(ps.tokens, Reverse(length=3).prompt_set(5, 2).tokens)
    assert PROMPT_GENERATORS.get("constant")(seed=0, token=7).tokens.tolist() == [[7] * 4] * 2
    assert {"constant", "reverse_ep", "repeated_tokens"} <= set(PROMPT_GENERATORS.names())
    with pytest.raises(UnknownNameError, match="did you mean 'reverse_ep'"):
        PROMPT_GENERATORS.get("revers_ep")
    with pytest.raises(UnknownNameError, match="did you mean 'constant'"):
        PROMPT_GENERATORS.get("constnt")
