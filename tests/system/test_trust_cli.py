"""Issue 26, item 14: the CLI's smaller trust defects — a URL as ``--out``, YAML merge keys
that override, warnings as plain lines, training counted when a corrupt checkpoint is trained
again, and ``--quiet`` keeping the results summary."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*"))


def test_a_url_as_out_is_refused_before_any_work(toy_spec, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    for url in ("s3://bucket/run", "gs://b/x", "memory://x"):
        assert main(["run", str(toy_spec), "--out", url]) == 2
        err = capsys.readouterr().err
        assert f"--out {url} is a URL" in err and "local folder" in err and "Traceback" not in err
    assert _files(tmp_path) == before  # nothing trained, nothing written, no 's3:' folder
    (tmp_path / "a-file").write_text("x")
    assert main(["run", str(toy_spec), "--out", str(tmp_path / "a-file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


MERGED = """\
mispec: 1
name: merged
models:
  base: &toy
    train: &train
      task: repeated_tokens
      task_args: {vocab: 16, half_len: 6}
      arch: {n_layers: 1, n_heads: 2, d_model: 16, d_head: 8, attn_only: true}
      steps: 40
      batch_size: 16
    seeds: [0]
    checkpoints: {steps: [0, 20]}
  longer:
    <<: *toy
    train:
      <<: *train
      steps: 20
    seeds: [1, 2]
  both:
    <<: [{seeds: [5]}, *toy]
prompts:
  rep: {generator: repeated_tokens, args: {n: 4, vocab: 16, half_len: 6}, seed: 1}
metrics:
  loss: {fn: loss, prompts: rep}
"""


def test_yaml_merge_keys_follow_yamls_rule(write_spec):
    """A key written beside ``<<`` overrides the merged one; a list of merged mappings reads
    as ``yaml.safe_load`` (PyYAML) reads it: the spec means what the standard loader says."""
    import yaml

    loaded = mispec.load_spec(write_spec(MERGED))
    models = loaded.spec.models
    assert models["longer"].train.steps == 20 and models["base"].train.steps == 40
    assert models["longer"].seeds == [1, 2] and models["base"].seeds == [0]
    assert models["longer"].train.batch_size == 16  # still merged in
    plain = yaml.safe_load(MERGED)["models"]
    assert plain["longer"]["train"]["steps"] == 20
    for name, entry in plain.items():
        assert models[name].seeds == entry["seeds"], name


def test_a_key_written_twice_is_still_a_duplicate(write_spec, capsys):
    text = MERGED.replace("      steps: 20\n", "      steps: 20\n      steps: 30\n")
    path = write_spec(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    line = text.splitlines().index("      steps: 30") + 1
    assert f"{path}:{line}:7: models.longer.train.steps: duplicate key 'steps'" in err


def _corrupt_one_checkpoint(project) -> int:
    files = sorted((project / ".mispec" / "checkpoints").rglob("model_20.safetensors"))
    assert len(files) == 1
    data = bytearray(files[0].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the tensors: the checksum fails
    files[0].write_bytes(bytes(data))
    return 20


def test_a_retrained_checkpoint_counts_its_training_and_warns_plainly(
    toy_spec, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(toy_spec), "-q"]) == 0
    first = capsys.readouterr().out
    assert re.search(r"done in [\d.]+ s: 40 training steps", first)
    _corrupt_one_checkpoint(tmp_path)
    # a new metric makes the checkpoints load again
    toy_spec.write_text(
        TOY_SPEC.replace(
            "  loss: {fn: loss, prompts: rep}",
            "  loss: {fn: loss, prompts: rep}\n  acc: {fn: accuracy, prompts: rep}",
        )
    )
    # a real process: Python's warning machinery prints to a real stderr (pytest records
    # warnings in-process instead)
    cli = Path(sys.executable).with_name("mispec")
    done = subprocess.run(
        [str(cli), "run", str(toy_spec), "-q"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out, err = done.stdout, done.stderr
    trained = int(re.search(r"done in [\d.]+ s: (\d+) training steps", out).group(1))
    assert trained == 20  # step 20 trained again from step 0: 20 updates, not "0"
    assert re.search(r"^warning: .*step 20", err, re.M), err
    assert "UserWarning" not in err and ".py:" not in err  # no Python warning lines


def test_quiet_drops_progress_not_the_results_summary(toy_spec, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(toy_spec), "--quiet"]) == 0
    quiet = capsys.readouterr()
    result = mispec.open_results(tmp_path / "runs" / "tiny")
    transition = result["toy"].to_dataset().transition.values.tolist()
    assert "transition" in quiet.out  # the headline values still print ...
    assert quiet.err == ""  # ... and no progress at all
    assert len(transition) == 1
