"""The one ground-truth reader (hwnas.estimators.truth): selection, seed statistics, and every refusal.

The tables are written here in the columns bench/ground_truth/run.py writes (fixtures of the
mechanics, not measurements); the accuracies are chosen so each figure can be checked by hand.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hwnas.errors import InvalidData
from hwnas.estimators.truth import ALL_SPACES, read_ground_truth, read_truth_table
from hwnas.space import Architecture
from tests.cli_run import run_cli

FIELDS = ["arch", "layers", "hidden", "heads", "ffn", "space", "band", "task", "seed", "recipe", "steps", "accuracy",
          "teacher_accuracy", "eval_rows", "parameters", "cpu_s", "wall_s", "predicted_ms", "measured_ms",
          "teacher_measured_ms", "measured_ratio", "finished_utc"]

A = Architecture(2, 128, 2, 256)
B = Architecture(3, 128, 4, 512)
C = Architecture(1, 192, 4, 768)
D = Architecture(4, 64, 2, 256)


def row(arch: Architecture, *, space="small", band="small-10ms", task="sst2", seed=0, recipe="gt-v1", steps=500,
        accuracy=0.8, predicted_ms=10.0, parameters=None) -> dict:
    return {"arch": arch.key, **arch.as_dict(), "space": space, "band": band, "task": task, "seed": seed,
            "recipe": recipe, "steps": steps, "accuracy": f"{accuracy:.5f}", "teacher_accuracy": "0.90350",
            "eval_rows": 2000, "parameters": parameters or arch.num_parameters() + 100, "cpu_s": "300.0",
            "wall_s": "900.0", "predicted_ms": f"{predicted_ms:.3f}", "measured_ms": "40.0",
            "teacher_measured_ms": "170.0", "measured_ratio": "0.23", "finished_utc": "2026-11-29T12:00:00Z"}


def write(path: Path, rows: list[dict], fields=FIELDS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def good_rows() -> list[dict]:
    """small: A (3 seeds), B (1 seed), C in another band; tiny: D (3 seeds); agnews: A, B (1 seed each)."""
    return [
        row(A, seed=0, accuracy=0.80), row(B, seed=0, accuracy=0.82, predicted_ms=10.2),
        row(A, seed=1, accuracy=0.81), row(A, seed=2, accuracy=0.84),
        row(C, band="small-20ms", accuracy=0.85, predicted_ms=20.0),
        row(D, space="tiny", band="tiny-3ms", seed=0, accuracy=0.50, predicted_ms=3.0),
        row(D, space="tiny", band="tiny-3ms", seed=1, accuracy=0.60, predicted_ms=3.0),
        row(D, space="tiny", band="tiny-3ms", seed=2, accuracy=0.70, predicted_ms=3.0),
        row(A, task="agnews", accuracy=0.88, parameters=A.num_parameters() + 300),
        row(B, task="agnews", accuracy=0.89, predicted_ms=10.2, parameters=B.num_parameters() + 300),
    ]


def test_selects_one_task_and_space_with_seed_means(tmp_path):
    path = write(tmp_path / "t.csv", good_rows())
    gt = read_ground_truth(path, task="sst2", space="small")
    assert gt.keys == sorted([A.key, B.key, C.key]) and gt.space == "small" and gt.rows == 5
    i = gt.keys.index(A.key)
    assert gt.accuracy[i] == pytest.approx((0.80 + 0.81 + 0.84) / 3) and gt.seeds[i] == 3
    assert gt.per_seed[A.key] == {0: 0.80, 1: 0.81, 2: 0.84}
    assert gt.latency_of() == {A.key: 10.0, B.key: 10.2, C.key: 20.0}
    assert gt.parameters[i] == A.num_parameters() + 100  # the table's figure, not recomputed
    assert gt.band_sizes() == {"small-10ms": 2, "small-20ms": 1}
    assert (gt.recipe, gt.steps) == ("gt-v1", 500)
    assert [gt.keys[k] for k in gt.in_table_order()] == [A.key, B.key, C.key]
    with pytest.raises(InvalidData, match="several spaces \\(small, tiny\\); choose one with --space"):
        read_ground_truth(path, task="sst2")
    only = read_ground_truth(path, task="agnews")  # one space: chosen by default
    assert only.space == "small" and only.accuracy.tolist() == pytest.approx([0.88, 0.89] if A.key < B.key else
                                                                              [0.89, 0.88])


def test_every_space_and_the_seed_statistics(tmp_path):
    gt = read_truth_table(write(tmp_path / "t.csv", good_rows())).select("sst2", ALL_SPACES)
    assert set(gt.keys) == {A.key, B.key, C.key, D.key} and gt.spaces[gt.keys.index(D.key)] == "tiny"
    assert list(gt.repeated(2)) == [A.key, D.key]  # table order
    dev = gt.seed_deviations(3)
    a = np.array([0.80, 0.81, 0.84])
    np.testing.assert_allclose(dev["small"], (a - a.mean()) * np.sqrt(1.5))
    np.testing.assert_allclose(dev["tiny"], [-0.1 * np.sqrt(1.5), 0.0, 0.1 * np.sqrt(1.5)], atol=1e-12)
    # the scaled deviations' rms estimates one seed's sd: here exactly the sample sd
    assert np.sqrt(np.mean(np.square(dev["small"]))) == pytest.approx(np.std(a, ddof=1))
    sub = gt.subset([gt.keys.index(D.key)])
    assert sub.keys == [D.key] and sub.rows == 3 and sub.predicted_ms.tolist() == [3.0]


def _set(i: int, **change):
    def edit(rows):
        rows[i] = {**rows[i], **change}
        return rows
    return edit


BAD = [
    ("missing-column", lambda rows: [{k: v for k, v in r.items() if k != "accuracy"} for r in rows],
     "lacks columns accuracy; it needs arch, space, band, task, seed, recipe, steps, accuracy, predicted_ms"),
    ("non-numeric-accuracy", _set(1, accuracy="0.8x"), "line 3: accuracy must be a fraction in [0, 1]; got '0.8x'"),
    ("nan-accuracy", _set(1, accuracy="nan"), "accuracy must be a fraction in [0, 1]; got 'nan'"),
    ("percent-accuracy", _set(1, accuracy="82.0"), "accuracy must be a fraction in [0, 1]; got '82.0'"),
    ("empty-accuracy", _set(1, accuracy=""), "line 3: missing accuracy"),
    ("bad-seed", _set(0, seed="one"), "line 2: seed must be an integer >= 0; got 'one'"),
    ("bad-latency", _set(4, predicted_ms="0"), "predicted_ms must be a positive number of milliseconds"),
    ("bad-parameters", _set(4, parameters="12.5"), "parameters must be an integer >= 1"),
    ("duplicate", lambda rows: rows + [dict(rows[2])],
     ("line 12: layers=2,hidden=128,heads=2,ffn=256 seed 1 of task 'sst2' (recipe gt-v1, 500 steps) appears twice "
      "(first on line 4)")),
    ("shape-disagrees", _set(1, heads="8"), "line 3: column heads is '8' but arch"),
    ("not-an-arch", _set(1, arch="layers=3,hidden=128"), "line 3: arch 'layers=3,hidden=128' is not an architecture"),
    ("two-bands", _set(2, band="small-20ms"), "belongs to one band"),
    ("two-spaces", _set(2, space="tiny"), "belongs to one space"),
    ("two-latencies", _set(2, predicted_ms="11.0"), "a student has one predicted latency"),
    ("two-parameter-counts", _set(2, parameters="5"), "a student has one parameter count"),
]


@pytest.mark.parametrize("name,edit,fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_tables_are_one_clear_line(tmp_path, name, edit, fragment):
    rows = edit([dict(r) for r in good_rows()])
    fields = [f for f in FIELDS if f in rows[0]]
    path = write(tmp_path / "bad.csv", rows, fields)
    with pytest.raises(InvalidData) as exc:
        read_ground_truth(path, task="sst2", space="small")
    assert fragment in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    assert str(path) in str(exc.value)


def test_unreadable_files_and_a_row_with_too_many_fields(tmp_path):
    with pytest.raises(InvalidData, match="does not exist"):
        read_truth_table(tmp_path / "absent.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"arch,accuracy\n\xe9,1\n")
    with pytest.raises(InvalidData, match="is not UTF-8 text"):
        read_truth_table(latin)
    path = write(tmp_path / "t.csv", good_rows())
    path.write_text(path.read_text() + path.read_text().splitlines()[1] + ",surplus\n")
    with pytest.raises(InvalidData, match="line 12: more fields than the header's 22"):
        read_truth_table(path)


def test_a_bad_row_of_another_task_is_refused_too(tmp_path):
    """Validation is of the whole file: a broken agnews row stops an sst2 reader (the file is broken)."""
    rows = good_rows()
    rows[-1] = {**rows[-1], "accuracy": "?"}
    with pytest.raises(InvalidData, match="line 11: accuracy must be"):
        read_ground_truth(write(tmp_path / "t.csv", rows), task="sst2", space="small")


def test_empty_and_ambiguous_selections(tmp_path):
    path = write(tmp_path / "t.csv", good_rows())
    tt = read_truth_table(path)
    with pytest.raises(InvalidData, match="holds no row of task 'mnli'; tasks in it: agnews, sst2"):
        tt.select("mnli", "small")
    with pytest.raises(InvalidData, match="holds no row of task 'agnews' in space 'tiny'; spaces with that task: small"):
        tt.select("agnews", "tiny")
    header_only = write(tmp_path / "empty.csv", [])
    with pytest.raises(InvalidData, match="holds no row of task 'sst2'; tasks in it: none"):
        read_ground_truth(header_only, task="sst2")
    mixed = write(tmp_path / "mixed.csv", good_rows() + [row(C, seed=1, recipe="gt-v2", steps=1000, accuracy=0.9,
                                                             band="small-20ms", predicted_ms=20.0)])
    with pytest.raises(InvalidData, match="mixes recipes/steps \\(gt-v1/500, gt-v2/1000\\)"):
        read_ground_truth(mixed, task="sst2", space="small")
    v2 = read_ground_truth(mixed, task="sst2", space="small", recipe="gt-v2")
    assert v2.keys == [C.key] and v2.accuracy.tolist() == [0.9] and (v2.recipe, v2.steps) == ("gt-v2", 1000)
    with pytest.raises(InvalidData, match="with steps 7; steps values there: 1000, 500"):
        read_ground_truth(mixed, task="sst2", space="small", steps=7)


def test_the_cli_and_the_bench_exit_2_with_one_line(tmp_path, capsys):
    rows = good_rows()
    rows[1] = {**rows[1], "accuracy": "high"}
    bad = write(tmp_path / "bad.csv", rows)
    code, _out, err = run_cli(["estimator", "fit", "--table", bad, "--task", "sst2", "--space", "small",
                               "--out", tmp_path / "m"], capsys)
    assert code == 2 and err.count("\n") == 1 and "line 3: accuracy must be a fraction in [0, 1]; got 'high'" in err
    assert not (tmp_path / "m").exists()
    from tests.estimators.test_bench_estimators import bench

    assert bench().main(["--table", str(bad), "--task", "sst2", "--estimators", "params"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "got 'high'" in err
