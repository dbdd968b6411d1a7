"""bench/bench_mos.py --rescore: saved supernet curves scored against the table as it is now.

Real files: a ground-truth CSV of ``small`` students (known accuracies, a fixture of the
mechanics, not a measurement) and curve files in the format bench_mos writes (one JSON line per
checkpoint, each holding every student's score).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hwnas.space import get_space

from .conftest import load_bench, write_synthetic_table



def bench_mos():
    return load_bench("bench_mos")


def acc_of(a) -> float:
    return 0.6 + 0.0005 * a.hidden + 0.002 * a.layers


def write_curve(path: Path, archs, score, steps=(100, 200)) -> Path:
    with path.open("w") as fh:
        for step in steps:
            fh.write(json.dumps({"step": step, "train_cpu_s": float(step),
                                 "scores": {a.key: float(score(a, step)) for a in archs}}) + "\n")
    return path


def setup(tmp_path):
    archs = get_space("small").enumerate()[::40][:12]
    table = write_synthetic_table(tmp_path / "gt.csv", archs, bands=3, space="small", accuracy=acc_of)
    rng = np.random.default_rng(1)
    noise = {a.key: rng.normal() for a in archs}
    plain = write_curve(tmp_path / "plain.jsonl", archs, lambda a, s: noise[a.key])
    same = write_curve(tmp_path / "same.jsonl", archs, lambda a, s: noise[a.key])
    oracle = write_curve(tmp_path / "oracle.jsonl", archs, lambda a, s: acc_of(a))
    return table, plain, same, oracle


def test_rescore_compares_arms_on_one_table_with_paired_differences(tmp_path, capsys):
    table, plain, same, oracle = setup(tmp_path)
    out = tmp_path / "r.json"
    rc = bench_mos().main(["--rescore", f"plain={plain},same={same},oracle={oracle}", "--table", str(table),
                           "--task", "sst2", "--bootstrap", "200", "--results", str(out)])
    assert rc == 0, capsys.readouterr().err
    res = json.loads(out.read_text())
    assert res["students"] == 12 and sorted(res["steps"]) == ["100", "200"]
    for row in res["steps"].values():
        # an arm that scores exactly like the first differs by 0 in every resample
        assert row["same"]["minus_plain"] == 0.0 and row["same"]["minus_plain_ci"] == [0.0, 0.0]
        # scores equal to the truth order every within-band pair correctly
        assert row["oracle"]["tau_within_band"] == 1.0
        assert row["oracle"]["minus_plain"] == 1.0 - row["plain"]["tau_within_band"]
        lo, hi = row["oracle"]["minus_plain_ci"]
        assert lo <= row["oracle"]["minus_plain"] <= hi
    assert "within-band pairs" in capsys.readouterr().out


def test_rescore_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    table, plain, _, _ = setup(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"step": 100, "tau_all": 0.5}) + "\n")
    for spec, extra in ((f"plain={plain},x={tmp_path / 'missing.jsonl'}", []), (f"plain={plain},bad={bad}", []),
                        (str(plain), []), (f"plain={plain}", ["--task", "agnews"])):
        argv = ["--rescore", spec, "--table", str(table), "--bootstrap", "10", *extra]
        assert bench_mos().main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
