"""`mispec runs` shows one study by default — the latest run's — in lines of at most 100
columns, values over seeds compact (issue 31 §5)."""

from __future__ import annotations

import json

import numpy as np

import mispec
from mispec.cli.main import main
from tests.conftest import TOY_SPEC

OTHER = TOY_SPEC.replace("name: tiny", "name: other")
THREE_SEEDS = TOY_SPEC.replace("seeds: [0]", "seeds: [0, 1, 2]").replace("late: 10", "late: 12")


def test_runs_defaults_to_the_latest_study_in_readable_lines(write_spec, tmp_path, capsys):
    store = tmp_path / ".mispec"
    mispec.run(write_spec(OTHER, "other.yaml"), store=store, progress=False)
    mispec.run(write_spec(TOY_SPEC, "a.yaml"), store=store, progress=False)
    last = mispec.run(write_spec(THREE_SEEDS, "b.yaml"), store=store, progress=False)
    ids = [json.loads(x)["run_id"] for x in (store / "runs.jsonl").read_text().splitlines()]

    assert main(["runs", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(map(len, lines)) <= 100
    assert [line.split()[0] for line in lines[2:4]] == ids[1:]  # tiny's two runs, not other's
    assert lines[0].split()[:3] == ["run", "study", "metrics.icl.args.late"]
    assert "study 'tiny' (the latest run's); 1 other study: --study NAME, --all" in out
    # the three-seed run's loss: mean ± sample sd over seeds at the last step
    loss = last.open()["toy"].to_dataset().loss.isel(step=-1).values
    expected = f"{np.mean(loss):.4g}±{np.std(loss, ddof=1):.2g}"
    header = lines[0].split()
    row = lines[3].split()
    assert header[3:] and len(row) == len(header)
    assert row[header.index("loss")] == expected
    assert row[header.index("models.toy.seeds")] == "[0,1,2]" and row[2] == "12"

    assert main(["runs", "--store", str(store), "--all", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in data["runs"]] == ids and data["study"] is None
    assert main(["runs", "--store", str(store), "--study", "other", "--format", "json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)["runs"]] == ids[:1]
    assert main(["runs", "--store", str(store), "--study", "tinny"]) == 2
    assert "did you mean 'tiny'" in capsys.readouterr().err

    # a narrow terminal: the study column goes first (the note names the study), then cells
    # are cut and columns left out, each named
    assert main(["runs", "--store", str(store), "--width", "60"]) == 0
    narrow = capsys.readouterr().out.splitlines()
    table = narrow[: narrow.index(next(x for x in narrow if x.startswith("values at")))]
    assert max(map(len, table)) <= 60 and table[0].split()[:2] == ["run", "late"]
    assert [line.split()[0] for line in table[2:]] == ids[1:]
    assert "study 'tiny' (the latest run's); 1 other study" in narrow[-2]
    hidden = (
        narrow[-1].split("not shown: ")[1].removesuffix(" (--width 0 for all, or --format json)")
    )
    assert table[0].split() + hidden.split(", ") == ["run", "late", "seeds", *header[4:]]
