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
