"""bench/bench_independent_truth.py on the committed ground-truth table, with runs files written here."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.estimators.distill_proxy import pack_bits

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "bench" / "ground_truth" / "table.csv"


def bench():
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_independent_truth", ROOT / "bench" / "bench_independent_truth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _students() -> list[str]:
    import csv

    with open(TABLE, newline="") as f:
        return sorted({r["arch"] for r in csv.DictReader(f) if r["space"] == "small" and r["task"] == "sst2"})


def _runs(path: Path, keys: list[str], quality: np.ndarray, seed: int) -> Path:
    """Per-row hits on 6,735 rows: student i gets a row right with probability quality[i]."""
    rng = np.random.default_rng(seed)
    runs = {}
    for k, q in zip(keys, quality, strict=True):
        hits = rng.random(6735) < q
        runs[k] = {"accuracy": float(hits[:2000].mean()), "agreement": float(hits.mean()), "kd": -1.0 + q,
                   "correct": pack_bits(hits), "agrees": pack_bits(hits)}
    path.write_text(json.dumps({"estimator": "distill-proxy", "signature": "x", "runs": runs}))
    return path


def test_another_seeds_runs_become_the_truth_and_the_seed_0_runs_a_score(tmp_path, capsys):
    keys = _students()
    quality = np.linspace(0.80, 0.90, len(keys))  # a clear order every run follows up to row noise
    full = _runs(tmp_path / "full.json", keys, quality, 0)
    proxy = _runs(tmp_path / "proxy.json", keys, quality, 1)
    other = _runs(tmp_path / "s1.json", keys[:-4], quality[:-4], 2)  # a partial run: 4 students missing
    argv = ["--table", str(TABLE), "--full", str(full), "--proxy", str(proxy), "--bootstrap", "50"]
    assert bench().main(argv) == 0
    plain = capsys.readouterr().out
    assert f"{len(keys)} of {len(keys)} students" in plain and "truth: the table's recipe on sst2/dev.tsv rows 4000-6734" in plain
    assert bench().main([*argv, "--truth-runs", str(other), "--truth-rows", "0:6735"]) == 0
    out = capsys.readouterr().out
    assert f"{len(keys) - 4} of {len(keys)} students" in out
    assert "truth: 1 other run(s) of the table's recipe (another seed), averaged, on sst2/dev.tsv rows 0-6734" in out
    line = next(x for x in out.splitlines() if x.startswith("the --full runs, the truth's rows 0-6734"))
    tau_all = float(line.split()[-4])
    assert tau_all > 0.8  # both runs follow the same order, 6,735 rows each
    assert "the --full runs, rows 2000-3999" in out


def test_too_few_students_in_every_file_is_one_line(tmp_path, capsys):
    keys = _students()
    q = np.full(len(keys), 0.85)
    args = ["--table", str(TABLE), "--full", str(_runs(tmp_path / "f.json", keys, q, 0)),
            "--proxy", str(_runs(tmp_path / "p.json", keys, q, 1)),
            "--truth-runs", str(_runs(tmp_path / "s.json", keys[:2], q[:2], 2))]
    assert bench().main(args) == 2
    assert "only 2 students are in every runs file; at least 3 are needed" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _no_bench_on_path():
    import sys

    before = list(sys.path)
    yield
    sys.path[:] = before
