"""A plugin's code is in its cache keys: edit a plugin metric, task, prompt generator or
model source between two runs and the next run recomputes what it computed, with the new
code (``mispec plan`` shows it as not cached first); an explicit ``version`` pins the code
and keeps the cache; a formatting-only edit changes nothing (``mispec.code_identity``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

import mispec

TOY = """\
mispec: 1
name: plugin-code
models:
  toy:
{model}
    seeds: [0]
    checkpoints: {{steps: [0, 4]}}
prompts:
  rep:
    generator: {generator}
    args: {args}
    seed: 1
metrics:
  loss: {{fn: loss, prompts: rep}}
{metrics}"""
TRAIN = """\
    train:
      task: {task}
      task_args: {task_args}
      arch: {{n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}}
      steps: 4
      batch_size: 8"""
REPEATED = dict(
    task="repeated_tokens",
    task_args="{vocab: 16, half_len: 4}",
    generator="repeated_tokens",
    args="{n: 4, vocab: 16, half_len: 4}",
)


def write(folder: Path, name: str, source: str) -> None:
    (folder / name).write_text(textwrap.dedent(source))


def project(tmp_path: Path, **fields: str) -> Path:
    (tmp_path / ".mispec").mkdir(exist_ok=True)
    values = {**REPEATED, "metrics": "", **fields}
    model = fields.get("model") or TRAIN.format(**values)
    spec = tmp_path / "spec.yaml"
    spec.write_text(TOY.format(**{**values, "model": model}))
    return spec


def run(spec: Path) -> tuple[dict[str, int], object]:
    result = mispec.run(spec, progress=False)
    return result.counters, mispec.open_results(result.run_dir)["toy"].to_dataset()


def cached(spec: Path) -> tuple[int, int]:
    """(results cached, results in the plan), as ``mispec plan`` tells them."""
    status = mispec.plan(spec).status
    return status.cells_cached, status.cells_total


# --------------------------------------------------------------------------- metric
METRIC = """\
from mispec.metrics.core import metric
from {helper} import FACTOR


@metric(dims=(), inputs=("x",){pin})
def scaled(x):
    return x * FACTOR
"""


def test_an_edited_plugin_metric_is_recomputed_and_a_version_pins_it(tmp_path):
    write(tmp_path, "keys_metric.py", METRIC.format(helper="keys_metric_helper", pin=""))
    write(tmp_path, "keys_metric_helper.py", "FACTOR = 1\n")
    spec = project(tmp_path, metrics="  scaled: {fn: 'keys_metric:scaled', inputs: {x: loss}}\n")
    counters, ds = run(spec)
    loss = ds.loss.values
    np.testing.assert_array_equal(ds.scaled.values, loss)

    # the metric's own file, reformatted with a comment and a docstring: still cached
    write(
        tmp_path,
        "keys_metric.py",
        "# a comment\n"
        + METRIC.format(helper="keys_metric_helper", pin="").replace(
            "    return", '    """Scaled."""\n    return'
        ),
    )
    assert cached(spec) == (4, 4)

    # the helper module beside it that it imports: its cells are no longer cached
    write(tmp_path, "keys_metric_helper.py", "FACTOR = 100\n")
    assert cached(spec) == (2, 4)  # the loss cells stay cached, the scaled ones do not
    counters, ds = run(spec)
    assert counters["cells_computed"] == 2 and counters["forward_passes"] == 0
    np.testing.assert_array_equal(ds.scaled.values, loss * 100)

    # pinned: an edit keeps the cache until the version changes
    write(tmp_path, "keys_metric.py", METRIC.format(helper="keys_metric_helper", pin=", version=3"))
    counters, ds = run(spec)  # the key now holds the version, not the code: computed once
    np.testing.assert_array_equal(ds.scaled.values, loss * 100)
    write(tmp_path, "keys_metric_helper.py", "FACTOR = 7\n")
    assert cached(spec) == (4, 4)
    counters, ds = run(spec)
    assert counters["cells_computed"] == 0
    np.testing.assert_array_equal(ds.scaled.values, loss * 100)  # the cache, as pinned
    write(tmp_path, "keys_metric.py", METRIC.format(helper="keys_metric_helper", pin=", version=4"))
    counters, ds = run(spec)
    assert counters["cells_computed"] == 2
    np.testing.assert_array_equal(ds.scaled.values, loss * 7)


# --------------------------------------------------------------------------- task
TASK = """\
import numpy as np

from mispec.tasks.base import Task, TaskBatch


class Shifted(Task):
    name = "shifted"
{pin}
    def __init__(self, length: int = 4, vocab: int = 8):
        super().__init__(length=length, vocab=vocab)
        self.length, self.vocab = length, vocab
        self.d_vocab, self.n_ctx = vocab + 1, 2 * length + 1

    def sample(self, rng, n):
        x = rng.integers(0, self.vocab, size=(n, self.length), dtype=np.int64)
        tokens = np.concatenate([np.full((n, 1), self.vocab), x, (x + {shift}) % self.vocab], 1)
        mask = np.zeros((n, self.n_ctx - 1), dtype=bool)
        mask[:, self.length :] = True
        return TaskBatch(tokens=tokens.astype(np.int64), loss_mask=mask)
"""


def test_an_edited_plugin_task_retrains_and_a_version_pins_it(tmp_path):
    write(tmp_path, "keys_task.py", TASK.format(shift=1, pin=""))
    task = dict(
        task="'keys_task:Shifted'",
        task_args="{length: 4, vocab: 8}",
        generator="'keys_task:Shifted'",
        args="{n: 4, length: 4, vocab: 8}",
    )
    spec = project(tmp_path, **task)
    counters, ds = run(spec)
    assert counters["training_steps"] == 4
    before = ds.loss.values

    write(tmp_path, "keys_task.py", TASK.format(shift=3, pin=""))
    assert cached(spec) == (0, 2)  # new training data, new prompts: nothing cached
    counters, ds = run(spec)
    assert counters["training_steps"] == 4 and counters["forward_passes"] == 2
    assert not np.array_equal(ds.loss.values[:, 1], before[:, 1])
    np.testing.assert_array_equal(ds.loss.values, again_from_scratch(tmp_path, spec))

    write(tmp_path, "keys_task.py", TASK.format(shift=3, pin="    version = 2\n"))
    counters, _ = run(spec)
    assert counters["training_steps"] == 4  # the key now holds the version: trained once
    write(tmp_path, "keys_task.py", TASK.format(shift=5, pin="    version = 2\n"))
    counters, _ = run(spec)
    assert counters["training_steps"] == 0 and counters["forward_passes"] == 0


def again_from_scratch(tmp_path: Path, spec: Path) -> np.ndarray:
    """The loss of the spec run in a fresh store: what the edited code really computes."""
    result = mispec.run(spec, store=tmp_path / "fresh-store", progress=False)
    assert result.counters["training_steps"] == 4
    return mispec.open_results(result.run_dir)["toy"].to_dataset().loss.values


# --------------------------------------------------------------------------- generator
GENERATOR = """\
import numpy as np

from mispec.prompts.core import PromptSet

{pin}
def repeats(*, seed: int, n: int = 4):
    rng = np.random.default_rng(seed + {offset})
    half = rng.integers(0, 16, size=(n, 4))
    return PromptSet(tokens=np.concatenate([half, half], 1).astype(np.int64), has_bos=False)
"""


def test_an_edited_plugin_generator_rebuilds_its_prompts(tmp_path):
    write(tmp_path, "keys_gen.py", GENERATOR.format(offset=0, pin=""))
    spec = project(tmp_path, generator="'keys_gen:repeats'", args="{n: 4}")
    counters, ds = run(spec)
    before = ds.loss.values

    write(tmp_path, "keys_gen.py", GENERATOR.format(offset=1, pin=""))
    assert cached(spec) == (0, 2)
    counters, ds = run(spec)
    assert counters["training_steps"] == 0 and counters["forward_passes"] == 2
    assert not np.array_equal(ds.loss.values, before)

    pinned = GENERATOR + "\nrepeats.version = 1\n"
    write(tmp_path, "keys_gen.py", pinned.format(offset=1, pin=""))
    run(spec)
    write(tmp_path, "keys_gen.py", pinned.format(offset=2, pin=""))
    assert cached(spec) == (2, 2)


# --------------------------------------------------------------------------- source
SOURCE = """\
from mispec.models.handle import ModelHandle, NativeSwap
from tests.system.test_source_plugin import MemorySource, memory_weights, native_kwargs


class Scaled(MemorySource):
    kind = "scaled"
{pin}
    def open(self, seed, store_dir, *, device="cpu", dtype="float32"):
        kwargs = native_kwargs(self.opts(), seed)

        def weights(step):
            return {{k: v * {scale} for k, v in memory_weights(kwargs, seed, step).items()}}

        steps = self.available_steps(seed)
        route = NativeSwap(kwargs, weights)
        info = self.info()
        return ModelHandle(self.name, seed, info, route, steps=steps, device=device, dtype=dtype)
"""
SOURCE_MODEL = "    source: 'keys_source:Scaled'\n    options: {steps: [0, 4]}"


def test_an_edited_plugin_source_reloads_its_checkpoints(tmp_path):
    write(tmp_path, "keys_source.py", SOURCE.format(scale=1.0, pin=""))
    spec = project(tmp_path, model=SOURCE_MODEL)
    counters, ds = run(spec)
    before = ds.loss.values

    write(tmp_path, "keys_source.py", SOURCE.format(scale=3.0, pin=""))
    assert cached(spec) == (0, 2)
    counters, ds = run(spec)
    assert counters["forward_passes"] == 2
    assert not np.array_equal(ds.loss.values, before)

    write(tmp_path, "keys_source.py", SOURCE.format(scale=3.0, pin="    version = 1\n"))
    run(spec)
    write(tmp_path, "keys_source.py", SOURCE.format(scale=5.0, pin="    version = 1\n"))
    assert cached(spec) == (2, 2)


# --------------------------------------------------------------------------- built-ins
def test_every_builtin_is_recorded_with_its_code_and_version():
    """Fails when a built-in's code changed without its version (see mispec.builtin_code)."""
    from mispec.builtin_code import current, problems, recorded

    now = current()
    assert {"metric:loss", "metric:representation_similarity", "task:repeated_tokens"} <= set(now)
    assert {"source:train", "source:pretrained", "source:path"} <= set(now)
    found = problems(now, recorded())
    assert not found, "\n".join(found)


def test_a_changed_builtin_without_a_new_version_is_refused(tmp_path, monkeypatch, capsys):
    import json

    import mispec.builtin_code as bc

    record = tmp_path / "builtin_code.json"
    monkeypatch.setattr(bc, "RECORD", record)
    assert bc.main([]) == 0
    then = json.loads(record.read_text())
    assert then == bc.current()
    # the code of `loss` as recorded differs from today's: refused, nothing written
    then["metric:loss"]["hash"] = "0" * 20
    record.write_text(json.dumps(then))
    found = bc.problems(bc.current(), then)
    version = then["metric:loss"]["version"]
    assert found == [
        f"metric 'loss': its code changed but its version is still {version}: bump it "
        "(version=N in its @metric(...)) so that cached results are recomputed, then run "
        "`python -m mispec.builtin_code` (or, for a change that cannot alter results, "
        "`python -m mispec.builtin_code --same-results metric:loss`)"
    ]
    assert bc.main([]) == 2
    assert "metric 'loss': its code changed" in capsys.readouterr().err
    assert json.loads(record.read_text())["metric:loss"]["hash"] == "0" * 20
    # a bumped version records; so does a change declared to keep the results
    then["metric:loss"]["version"] = version - 1
    record.write_text(json.dumps(then))
    assert bc.main([]) == 0 and json.loads(record.read_text()) == bc.current()
    then["metric:loss"]["hash"] = "0" * 20
    record.write_text(json.dumps(then))
    assert bc.main(["--same-results", "metric:loss"]) == 0


def test_formatting_comments_and_docstrings_do_not_change_a_hash():
    from mispec.code_identity import normalise

    plain = "def f(x, y):\n    return x*2+y\n"
    formatted = (
        'def f(\n    x,\n    y,\n):\n    """Twice x, plus y."""\n    # the sum\n'
        "    return (x * 2) + y\n"
    )
    assert normalise(plain) == normalise(formatted)
    assert normalise(plain) != normalise(plain.replace("2", "3"))
    assert normalise("s = 'a'\n") == normalise('s = "a"\n')


def test_a_worker_holding_older_plugin_code_refuses_the_cell(tmp_path, monkeypatch):
    """A long-lived (Dask) worker that imported the plugin before it was edited would run the
    old code under the new key: the definition it imported and the plan's disagree."""
    import dataclasses

    import pytest
    import xarray as xr

    from mispec.errors import MetricError
    from mispec.execute.work.invoke import call_metric
    from mispec.plugin_import import import_reference

    stale = METRIC.format(helper="keys_stale_helper", pin="").replace("scaled", "stale")
    write(tmp_path, "keys_stale.py", stale)
    write(tmp_path, "keys_stale_helper.py", "FACTOR = 2\n")
    mdef = import_reference("keys_stale:stale", tmp_path)
    x = xr.DataArray(3.0)
    assert float(call_metric(mdef, {}, node="n", inputs={"x": x})) == 6.0
    planned = dataclasses.replace(mdef, code={"code": "edited since"})
    with pytest.raises(MetricError, match="restart the workers"):
        call_metric(planned, {}, node="n", inputs={"x": x})
