"""The search loop and its output folder: files, winner, no overwriting, resume after a kill."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from hwnas.errors import InvalidConfig, InvalidData
from hwnas.search import run_search, search
from hwnas.search.pareto import pareto_mask
from hwnas.search.synthetic import SyntheticEstimator, SyntheticLatency
from hwnas.space import load_architectures

from .conftest import synthetic_problem


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_writes_every_output_and_the_winner_is_the_best_feasible(tmp_path, problem):
    out = tmp_path / "run"
    est = SyntheticEstimator()
    result = run_search(problem, est, strategy="random", evaluations=15, seed=1, out=out,
                        describe={"predictor": "p.hwnas", "supernet": "sn"})
    for name in ("config.json", "evaluated.csv", "front.json", "winner.json", "front.png", "hypervolume.png"):
        assert (out / name).is_file(), name
    assert (out / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = _rows(out / "evaluated.csv")
    assert len(rows) == 15 == est.calls
    assert [int(r["eval"]) for r in rows] == list(range(1, 16))
    feasible = [r for r in rows if r["feasible"] == "True"]
    best = max(feasible, key=lambda r: float(r["score"]))
    winner = json.loads((out / "winner.json").read_text())
    assert set(winner) >= {"arch", "score", "latency_ms", "latency_upper_ms", "budget_ms", "space", "device",
                           "seq_len", "batch_size", "supernet", "predictor"}
    assert winner["score"] == pytest.approx(float(best["score"]))
    assert winner["latency_upper_ms"] <= winner["budget_ms"] == problem.budget_ms
    assert (winner["space"], winner["device"], winner["seq_len"], winner["batch_size"]) == ("tiny", "synthetic", 128, 1)
    assert (winner["predictor"], winner["supernet"]) == ("p.hwnas", "sn")
    assert load_architectures(out / "winner.json") == [result.winner.arch]
    # the front in front.json is exactly the non-dominated feasible rows
    front = json.loads((out / "front.json").read_text())
    s = np.array([float(r["score"]) for r in feasible])
    lat = np.array([float(r["latency_ms"]) for r in feasible])
    expected = {(r["layers"], r["hidden"], r["heads"], r["ffn"]) for r, m in zip(feasible, pareto_mask(s, lat), strict=True) if m}
    got = {tuple(str(c["arch"][d]) for d in ("layers", "hidden", "heads", "ffn")) for c in front["front"]}
    assert got == expected
    assert front["hypervolume"] == pytest.approx(result.hypervolume) and result.hypervolume > 0
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "done" and config["strategy"] == "random" and config["budget_ms"] == problem.budget_ms
    # the running columns only improve
    hv = [float(r["hypervolume"]) for r in rows]
    assert all(b >= a - 1e-12 for a, b in zip(hv, hv[1:], strict=False))


def test_an_existing_folder_is_never_overwritten(tmp_path, problem):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InvalidConfig, match="is not empty and was not written by hwnas"):
        run_search(problem, SyntheticEstimator(), strategy="random", evaluations=3, out=out)
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


class _Dies(SyntheticEstimator):
    """Raises KeyboardInterrupt on the call after ``calls_before_death`` architectures, like a Ctrl-C."""

    def __init__(self, calls_before_death: int) -> None:
        super().__init__()
        self.limit = calls_before_death

    def score(self, archs):
        if self.calls + len(archs) > self.limit:
            raise KeyboardInterrupt
        return super().score(archs)


@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_a_killed_search_resumes_without_losing_or_repeating_work(tmp_path, problem, strategy):
    out = tmp_path / "run"
    options = {"population_size": 8, "parents": 2, "mutations": 3, "crossovers": 3} if strategy == "evolution" else {}
    with pytest.raises(KeyboardInterrupt):
        run_search(problem, _Dies(7), strategy=strategy, strategy_options=options, evaluations=20, batch=2, out=out)
    before = _rows(out / "evaluated.csv")
    assert len(before) == 6  # three batches of two made it to disk
    assert json.loads((out / "config.json").read_text())["status"] == "running"
    est = SyntheticEstimator()
    result = run_search(problem, est, strategy=strategy, strategy_options=options, evaluations=20, batch=2,
                        out=out, resume=True)
    after = _rows(out / "evaluated.csv")
    assert len(after) == 20 and est.calls == 14
    assert [r["score"] for r in after[:6]] == [r["score"] for r in before]
    keys = [(r["layers"], r["hidden"], r["heads"], r["ffn"]) for r in after]
    assert len(set(keys)) == 20
    assert result.winner is not None


def test_resume_refuses_other_settings(tmp_path, problem):
    out = tmp_path / "run"
    run_search(problem, SyntheticEstimator(), strategy="random", evaluations=3, out=out)
    with pytest.raises(InvalidConfig, match="cannot resume .* different settings .*strategy: was 'random', now 'evolution'"):
        run_search(problem, SyntheticEstimator(), strategy="evolution", evaluations=5, out=out, resume=True)
    other = synthetic_problem(quantile=0.7)
    with pytest.raises(InvalidConfig, match="budget_ms"):
        run_search(other, SyntheticEstimator(), strategy="random", evaluations=5, out=out, resume=True)


def test_resume_of_a_finished_search_only_rewrites_outputs(tmp_path, problem):
    out = tmp_path / "run"
    first = run_search(problem, SyntheticEstimator(), strategy="random", evaluations=5, out=out)
    est = SyntheticEstimator()
    again = run_search(problem, est, strategy="random", evaluations=5, out=out, resume=True)
    assert est.calls == 0 and again.winner == first.winner


def test_stops_when_the_feasible_set_is_used_up(problem):
    n = int(problem.feasible.sum())
    result = run_search(problem, SyntheticEstimator(), strategy="random", evaluations=n + 10)
    assert result.stopped == "exhausted" and len(result.evaluated) == n


def test_estimator_returning_the_wrong_number_of_scores(problem):
    with pytest.raises(InvalidData, match="returned 1 scores for 2 architectures"):
        run_search(problem, lambda archs: np.zeros(1), strategy="random", evaluations=4, batch=2)


def test_search_entry_point_with_extra_constraints_and_reward(tmp_path):
    result = search(predictor=SyntheticLatency(), estimator=SyntheticEstimator(), max_latency_ms=20.0, space="tiny",
                    strategy="evolution", strategy_options={"population_size": 6, "parents": 2, "mutations": 2,
                                                            "crossovers": 2},
                    evaluations=12, objective="reward", reward_weight=0.5, max_params=5.5e6, max_memory_mb=100.0)
    assert result.winner is not None and result.winner.params <= 5.5e6
    assert result.winner.reward is not None
    df = result.evaluated
    feas = df[df["feasible"]]
    assert result.winner.reward == pytest.approx(feas["reward"].astype(float).max())
    assert list(df.columns)[:5] == ["eval", "layers", "hidden", "heads", "ffn"]


def test_search_needs_a_space_when_nothing_names_one():
    with pytest.raises(InvalidConfig, match="give a space"):
        search(predictor=SyntheticLatency(), estimator=SyntheticEstimator(), max_latency_ms=20.0)
