"""The search problem: feasibility on the upper bound, constraints, objectives, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.errors import InvalidConfig
from hwnas.search.problem import (
    Constraint,
    SearchProblem,
    max_memory_constraint,
    max_params_constraint,
    scalarised_reward,
)
from hwnas.search.synthetic import SyntheticLatency
from hwnas.space import Architecture


def test_feasibility_uses_the_upper_bound_not_the_prediction():
    lat = SyntheticLatency(upper_margin=0.5)
    arch = Architecture(4, 256, 4, 1024)
    pred = float(lat.predict([arch])[0])
    # a budget between the prediction and the upper bound: predicted fast enough, but not safely
    problem = SearchProblem(space="small", latency=lat, budget_ms=pred * 1.2)
    i = problem.index(arch)
    assert problem.latency_ms[i] < problem.budget_ms < problem.latency_upper_ms[i]
    assert not problem.feasible[i]
    assert np.all(problem.latency_upper_ms[problem.feasible] <= problem.budget_ms)


def test_budget_below_the_fastest_names_it():
    with pytest.raises(InvalidConfig, match=r"^no architecture in space small is predicted under 0\.2 ms; the fastest is 2\.54 ms"):
        SearchProblem(space="small", latency=SyntheticLatency(), budget_ms=0.2)


def test_constraints_that_exclude_everything_say_which():
    with pytest.raises(InvalidConfig, match="meets params <= 1000 parameters"):
        SearchProblem(space="tiny", latency=SyntheticLatency(), budget_ms=1e6, constraints=[max_params_constraint(1000)])


def test_memory_constraint_is_fp32_weights_in_mb():
    c = max_memory_constraint(20.0)
    arch = Architecture(2, 128, 2, 256)
    assert c.values(np.array([arch.as_tuple()]))[0] == pytest.approx(arch.num_parameters() * 4 / 1e6)
    problem = SearchProblem(space="tiny", latency=SyntheticLatency(), budget_ms=1e6, constraints=[c])
    assert 0 < problem.feasible.sum() < len(problem)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"budget_ms": 0}, "budget_ms must be a positive number"),
        ({"budget_ms": float("nan")}, "budget_ms must be a positive number"),
        ({"seq_len": 0}, "seq_len must be an integer >= 1"),
        ({"batch_size": 1.5}, "batch_size must be an integer >= 1"),
        ({"objective": "speed"}, "objective must be one of pareto, score, reward"),
        ({"reward_weight": -1}, "reward_weight must be a number >= 0"),
        ({"latency": object()}, "latency must have predict\\(\\) and predict_upper\\(\\)"),
        ({"constraints": [max_params_constraint(1e7), max_params_constraint(2e7)]}, "constraint names must be unique"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    args = {"space": "tiny", "latency": SyntheticLatency(), "budget_ms": 10.0, **kwargs}
    with pytest.raises(InvalidConfig, match=message):
        SearchProblem(**args)


def test_constraint_bound_must_be_positive():
    with pytest.raises(InvalidConfig, match="needs a positive finite bound"):
        Constraint("x", 0.0, lambda a: a[:, 0])


class _Broken(SyntheticLatency):
    def predict(self, archs, *, seq_len=128, batch_size=1):
        out = super().predict(archs, seq_len=seq_len, batch_size=batch_size)
        out[3] = np.nan
        return out


def test_a_latency_model_that_returns_nan_is_refused():
    with pytest.raises(InvalidConfig, match="latencies must be positive and finite"):
        SearchProblem(space="tiny", latency=_Broken(), budget_ms=10.0)


def test_objectives_per_mode():
    lat = SyntheticLatency()
    idx = np.array([0, 5])
    scores = np.array([1.0, 2.0])
    pareto = SearchProblem(space="tiny", latency=lat, budget_ms=1e6)
    assert pareto.objectives(idx, scores).tolist() == [[1.0, -pareto.latency_ms[0]], [2.0, -pareto.latency_ms[5]]]
    single = SearchProblem(space="tiny", latency=lat, budget_ms=1e6, objective="score")
    assert single.objectives(idx, scores).shape == (2, 1)
    reward = SearchProblem(space="tiny", latency=lat, budget_ms=10.0, objective="reward", reward_weight=0.5)
    expected = scores - 0.5 * reward.latency_ms[idx] / 10.0
    assert reward.objectives(idx, scores)[:, 0] == pytest.approx(expected)
    assert reward.rank_value(idx, scores) == pytest.approx(expected)


def test_scalarised_reward_trades_latency_for_score():
    r = scalarised_reward(np.array([1.0, 1.0]), np.array([2.0, 4.0]), budget_ms=4.0, weight=0.2)
    assert r.tolist() == pytest.approx([0.9, 0.8])
