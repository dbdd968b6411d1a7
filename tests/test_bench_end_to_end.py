"""bench/bench_end_to_end.py: budgets, the largest-params baseline, the verdict, and bad input (no training here)."""

from __future__ import annotations

import fcntl
import importlib.util
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "bench/ground_truth/cpu-tiny.hwnas"


@pytest.fixture(scope="module")
def e2e():
    spec = importlib.util.spec_from_file_location("bench_end_to_end", ROOT / "bench/bench_end_to_end.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    task = tmp_path / "task.tsv"
    task.write_text("sentence\tlabel\ngood\t1\nbad\t0\n", encoding="utf-8")
    return ["--task", str(task), "--predictor", str(TINY), "--space", "tiny", "--estimator", "params",
            "--out", str(tmp_path / "out"), *extra]


def test_budgets_parse_ms_and_fractions(e2e):
    b = e2e.parse_budgets("1/3, 1/4,10ms,800us")
    assert [x.label for x in b] == ["1/3", "1/4", "10ms", "0.8ms"]
    assert b[0].fraction == Fraction(1, 3) and b[0].ms is None
    assert b[2].ms == 10.0 and b[3].ms == pytest.approx(0.8)
    assert b[0].folder == "1of3" and b[3].folder == "0p8ms"
    for bad in ("5xx", "3/2", "0/4", "1/4,1/4", ""):
        with pytest.raises(e2e.BadInput):
            e2e.parse_budgets(bad)


def test_arms_and_seeds_are_checked(e2e):
    assert e2e.parse_arms("searched,largest-params") == ["searched", "largest-params"]
    with pytest.raises(e2e.BadInput, match="unknown or repeated arm 'biggest'"):
        e2e.parse_arms("searched,biggest")
    assert e2e.parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0,0", "-1", "a"):
        with pytest.raises(e2e.BadInput):
            e2e.parse_seeds(bad)


def test_largest_params_uses_the_searchs_feasibility_rule(e2e):
    from hwnas.predictors import load_predictor
    from hwnas.search import SearchProblem

    problem = SearchProblem(space="tiny", latency=load_predictor(TINY), budget_ms=6.0)
    rec = e2e.largest_params(problem)
    i = next(k for k, a in enumerate(problem.candidates) if a.key == rec["key"])
    assert problem.latency_upper_ms[i] <= 6.0  # the upper bound, not the point prediction, decides
    assert rec["params"] == problem.params[problem.feasible].max()
    # some architecture with more parameters exists but is not feasible: the budget bites
    assert problem.params.max() > rec["params"]
    ties = np.flatnonzero(problem.feasible & (problem.params == rec["params"]))
    assert rec["latency_ms"] == pytest.approx(problem.latency_ms[ties].min())


def test_verdict_against_seed_noise(e2e):
    better = e2e.compare([0.90, 0.91, 0.92], [0.85, 0.86, 0.87], same_arch=False)
    assert better["better_beyond_noise"] and better["diff"] == pytest.approx(0.05)
    assert better["se"] == pytest.approx(math.sqrt(2 * 0.01 ** 2 / 3))
    within = e2e.compare([0.861, 0.871, 0.881], [0.86, 0.87, 0.88], same_arch=False)
    assert within["at_least_as_accurate"] and not within["better_beyond_noise"]
    assert "within the seed noise" in within["verdict"]
    worse = e2e.compare([0.80, 0.81, 0.82], [0.86, 0.87, 0.88], same_arch=False)
    assert worse["worse_beyond_noise"] and not worse["at_least_as_accurate"]
    one = e2e.compare([0.9], [0.8], same_arch=False)
    assert one["se"] is None and "one seed" in one["verdict"]
    same = e2e.compare([0.9, 0.8], [0.9, 0.8], same_arch=True)
    assert same["diff"] == 0 and "coincide" in same["verdict"]


@pytest.mark.parametrize("extra, message", [
    (["--budgets", "1ms"], "no architecture in space tiny is predicted under 1 ms"),
    (["--budgets", "5ms", "--arms", "searched,nope"], "unknown or repeated arm 'nope'"),
    (["--budgets", "five"], "cannot read 'five'"),
    (["--budgets", "5ms", "--recipe", "nope"], "unknown recipe 'nope'"),
    (["--budgets", "5ms", "--estimator", "nope"], "unknown estimator 'nope'"),
])
def test_bad_input_is_one_line_exit_2_before_anything_is_written(e2e, tmp_path, capsys, extra, message):
    assert e2e.main(_argv(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_second_runner_is_refused(e2e, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert e2e.main(_argv(tmp_path, "--budgets", "6ms")) == 2
    assert "another bench_end_to_end runner holds" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [".lock"]  # nothing searched or trained


def _arm(key: str, accs: list[float], teacher: float = 0.90, ratio: float = 0.25) -> dict:
    runs = {str(i): {"seed": i, "accuracy": a, "kept": a / teacher, "teacher_accuracy": teacher,
                     "measured_ms": 10.0, "ratio_to_teacher": ratio, "cpu_s": 300.0, "steps": 500}
            for i, a in enumerate(accs)}
    return {"key": key, "params": 10_000_000, "latency_ms": 9.0, "latency_upper_ms": 9.8, "runs": runs}


def test_printout_states_both_goals(e2e):
    results = {
        "command": "bench_end_to_end.py ...", "teacher_latency": {
            "arch": "layers=6,hidden=384,heads=12,ffn=1536", "device": "cpu", "threads": 1, "seq_len": 128,
            "batch_size": 1, "timing": "default", "measured_utc": "2026-11-29T00:00:00Z", "latency_ms": 41.0,
            "normalised_ms": 40.0, "basis": "drift-normalised", "base_ms": 40.0},
        "settings": {"task": "t.tsv", "eval": None, "space": "small", "predictor": "p.hwnas", "estimator": "params",
                     "recipe": "gt-v1", "distill_args": "", "seeds": [0, 1, 2]},
        "budgets": [
            {"label": "1/4", "fraction": "1/4", "budget_ms": 10.0, "feasible": 80, "space_size": 630,
             "arms": {"searched": _arm("layers=4,hidden=256,heads=4,ffn=1024", [0.88, 0.885, 0.89]),
                      "largest-params": _arm("layers=2,hidden=384,heads=4,ffn=1024", [0.85, 0.855, 0.86])}},
            {"label": "1/3", "fraction": "1/3", "budget_ms": 13.3, "feasible": 200, "space_size": 630,
             "arms": {"searched": _arm("layers=5,hidden=256,heads=4,ffn=1024", [0.87, 0.88, 0.89]),
                      "largest-params": _arm("layers=5,hidden=256,heads=4,ffn=1024", [0.87, 0.88, 0.89])}},
        ],
    }
    text = e2e.render(results)
    assert "verdict: searched - largest-params = +3.00 points" in text
    assert "better by more than the seed noise" in text and "the arms coincide" in text
    assert "issue 12 goal" in text and ": MET -- at least as accurate in 2 of 2 budget(s), better beyond noise in 1" in text
    # kept 0.885 / 0.90 = 98.3% at 1/4, measured speed-up 4x
    assert "issue 14 goal (kept >= 97% of the teacher at the 4x speed-up): MET -- kept 98.3%" in text
    assert "x4.00" in text
