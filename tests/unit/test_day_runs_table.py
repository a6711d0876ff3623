"""`mispec runs` lays its table out in readable lines (issue 31 §5): known values in, known
text out."""

from __future__ import annotations

from mispec.cli.runs_verb import compact_values, fit_table, short_keys


def test_values_are_compact_per_seed_or_mean_sd():
    assert compact_values([0.123456]) == "0.1235"
    assert compact_values([1.0, None]) == "1/nan"
    assert compact_values([1.0, 2.0, 3.0]) == "2±1"  # mean 2, sample sd 1
    assert compact_values([0.5, 0.5, 0.5, 0.5]) == "0.5±0"
    assert compact_values([1.0, None, 3.0]) == "2±nan"
    assert compact_values(None) == "—" and compact_values([]) == "—"


def test_short_keys_are_the_shortest_distinct_tails():
    keys = ["models.toy.train.steps", "models.big.train.steps", "metrics.icl.args.late"]
    assert short_keys(keys) == ["toy.train.steps", "big.train.steps", "late"]
    assert short_keys(["a.b", "b"]) == ["a.b", "b"]  # "b" is a whole key: a.b stays long


def test_a_wide_table_fits_the_width_and_names_what_it_left_out():
    header = ["run", "study", "models.toy.train.steps", "metrics.icl.args.late"]
    header += [f"metric_{i}" for i in range(12)]
    rows = [["20260101T000000-abcdef", "tiny", "40", "10", *["0.1234/0.5678"] * 12]]
    full, hidden = fit_table(header, rows, 0, spec_columns=2)
    assert hidden == [] and max(map(len, full)) > 200
    lines, hidden = fit_table(header, rows, 100, spec_columns=2)
    assert max(map(len, lines)) <= 100
    assert lines[0].split() == ["run", "study", "steps", "late", *header[4 : 16 - len(hidden)]]
    # run 22 + study 5 + steps 5 + late 4 + 3 gaps = 42, each value column 2 + 13: 3 fit (87)
    assert hidden == header[7:] and len(hidden) == 9 and len(lines[0]) <= 87
    assert lines[2].split() == [
        "20260101T000000-abcdef",
        "tiny",
        "40",
        "10",
        *["0.1234/0.5678"] * 3,
    ]
    fits, none = fit_table(header[:4], [rows[0][:4]], 100, spec_columns=2)
    assert none == [] and fits[0].split() == header[:4]  # what fits keeps its full keys
