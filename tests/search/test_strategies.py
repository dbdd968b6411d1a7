"""One contract for every registered strategy, on the synthetic problem with a known front."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.errors import InvalidArchitecture, InvalidConfig, InvalidData
from hwnas.search import create_strategy, list_strategies, register_strategy, unregister_strategy
from hwnas.search.base import Strategy
from hwnas.search.pareto import hypervolume_2d
from hwnas.search.problem import max_params_constraint
from hwnas.space import Architecture

from .conftest import synthetic_problem

# Smaller settings than the defaults so that a generation fits the tests' budgets;
# any strategy not listed runs with its defaults.
TEST_OPTIONS = {
    "evolution": {"population_size": 12, "parents": 4, "mutations": 4, "crossovers": 4},
    "bo": {"initial": 6, "mc_samples": 16},
}

STRATEGIES = list_strategies()


def make(name: str, seed: int = 0) -> Strategy:
    return create_strategy(name, seed=seed, **TEST_OPTIONS.get(name, {}))


def drive(strategy: Strategy, estimator, evaluations: int, batch: int = 6) -> list[Architecture]:
    """Ask/tell until ``evaluations`` are spent; returns every asked architecture in order."""
    asked: list[Architecture] = []
    while len(asked) < evaluations:
        archs = strategy.ask(min(batch, evaluations - len(asked)))
        if not archs:
            break
        asked.extend(archs)
        strategy.tell(archs, estimator.score(archs))
    return asked


def test_registry_holds_the_three_strategies():
    assert {"random", "evolution", "bo"} <= set(STRATEGIES)


@pytest.mark.parametrize("name", STRATEGIES)
def test_respects_the_budget_and_constraints(name, estimator):
    problem = synthetic_problem(constraints=[max_params_constraint(6.0e6)])
    assert 0 < problem.feasible.sum() < problem.latency_ok.sum()  # the extra constraint bites
    strategy = make(name).setup(problem)
    asked = drive(strategy, estimator, 24)
    assert len(asked) == 24
    for arch in asked:
        i = problem.index(arch)
        assert problem.latency_upper_ms[i] <= problem.budget_ms
        assert arch.num_parameters() <= 6.0e6


@pytest.mark.parametrize("name", STRATEGIES)
def test_never_proposes_outside_the_space_nor_twice(name, problem, estimator):
    strategy = make(name).setup(problem)
    asked = drive(strategy, estimator, 20, batch=5)
    assert all(problem.space.validate(a) == a for a in asked)
    assert len(set(asked)) == len(asked)


@pytest.mark.parametrize("name", STRATEGIES)
def test_reproducible_with_a_seed(name, problem, estimator):
    first = drive(make(name, seed=3).setup(problem), estimator, 14)
    again = drive(make(name, seed=3).setup(problem), estimator, 14)
    other = drive(make(name, seed=4).setup(problem), estimator, 14)
    assert first == again
    assert first != other


@pytest.mark.parametrize("name", STRATEGIES)
def test_improves_on_its_start(name, problem, estimator):
    """The hypervolume after 30 evaluations beats the one after the first 4, for several seeds."""
    f = problem.feasible_indices
    all_scores = estimator.score(problem.array)
    ref = float(all_scores[f].min())

    def hv(archs):
        idx = np.array([problem.index(a) for a in archs])
        return hypervolume_2d(all_scores[idx], problem.latency_ms[idx], ref_score=ref, ref_latency_ms=problem.budget_ms)

    true_hv = hv([problem.candidates[i] for i in f])
    for seed in (0, 1, 2):
        asked = drive(make(name, seed=seed).setup(problem), estimator, 30, batch=8)
        assert hv(asked[:4]) < hv(asked) <= true_hv + 1e-9


@pytest.mark.parametrize("name", STRATEGIES)
def test_exhausts_the_feasible_set_exactly_once(name, estimator):
    problem = synthetic_problem(quantile=0.3)
    n = int(problem.feasible.sum())
    strategy = make(name).setup(problem)
    asked = drive(strategy, estimator, 10 * n, batch=8)
    assert sorted(problem.index(a) for a in asked) == sorted(problem.feasible_indices.tolist())
    assert strategy.exhausted and strategy.ask(3) == []


@pytest.mark.parametrize("name", STRATEGIES)
def test_accepts_results_it_did_not_ask_for(name, problem, estimator):
    """Users drive the ask/tell API with their own evaluations, including ones made elsewhere."""
    strategy = make(name).setup(problem)
    mine = [problem.candidates[i] for i in problem.feasible_indices[:3]]
    strategy.tell(mine, estimator.score(mine))
    asked = drive(strategy, estimator, 10)
    assert not set(mine) & set(asked)
    assert len(strategy.history) == 13


@pytest.mark.parametrize("name", STRATEGIES)
def test_tell_refuses_bad_results(name, problem, estimator):
    strategy = make(name).setup(problem)
    archs = strategy.ask(2)
    with pytest.raises(InvalidData, match="2 architectures but 1 scores"):
        strategy.tell(archs, [0.1])
    with pytest.raises(InvalidData, match="finite"):
        strategy.tell(archs, [0.1, float("nan")])
    outside = Architecture(layers=9, hidden=128, heads=2, ffn=256)
    with pytest.raises(InvalidArchitecture, match="outside space"):
        strategy.tell([outside], [0.0])
    strategy.tell(archs, estimator.score(archs))
    with pytest.raises(InvalidData, match="already told"):
        strategy.tell(archs[:1], [0.0])
    with pytest.raises(InvalidConfig, match="n >= 1"):
        strategy.ask(0)


def test_ask_before_setup_is_refused():
    with pytest.raises(InvalidConfig, match="setup"):
        create_strategy("random").ask()


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(InvalidConfig, match="unknown strategy 'annealing'; strategies are .*bo"):
        create_strategy("annealing")


def test_bad_option_is_one_clear_error():
    with pytest.raises(InvalidConfig, match="bad options for strategy 'random'"):
        create_strategy("random", population_size=3)


def test_registry_refuses_duplicates_and_runs_new_strategies():
    class First(Strategy):
        name = "first-feasible"

        def _propose(self, n):
            return self.available[:n]

    register_strategy(First)
    try:
        with pytest.raises(InvalidConfig, match="already registered"):
            register_strategy(type("Other", (First,), {"name": "first-feasible"}))
        problem = synthetic_problem()
        asked = create_strategy("first-feasible").setup(problem).ask(3)
        assert [problem.index(a) for a in asked] == problem.feasible_indices[:3].tolist()
    finally:
        unregister_strategy("first-feasible")


def test_seed_validation():
    with pytest.raises(InvalidConfig, match="seed must be an integer >= 0"):
        create_strategy("random", seed=-1)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"population_size": 10}, "population_size must equal parents \\+ mutations \\+ crossovers"),
        ({"parents": 0}, "parents must be an integer >= 1"),
        ({"mutation_prob": 0.0}, "mutation_prob must be a number in \\(0, 1\\]"),
        ({"population_size": 2, "parents": 2, "mutations": 0, "crossovers": 0}, "mutations \\+ crossovers must be >= 1"),
        ({"population_size": 5, "parents": 1, "mutations": 2, "crossovers": 2}, "crossover needs parents >= 2"),
    ],
)
def test_evolution_validates_its_options(options, message):
    with pytest.raises(InvalidConfig, match=message):
        create_strategy("evolution", **options)


def test_evolution_defaults_are_hats():
    evo = create_strategy("evolution")
    assert (evo.population_size, evo.parents, evo.mutations, evo.crossovers, evo.mutation_prob) == (125, 25, 50, 50, 0.3)


@pytest.mark.parametrize("options, message", [({"initial": 1}, "initial must be an integer >= 2"),
                                               ({"mc_samples": 0}, "mc_samples"), ({"ref_margin": -1}, "ref_margin")])
def test_bo_validates_its_options(options, message):
    with pytest.raises(InvalidConfig, match=message):
        create_strategy("bo", **options)


def test_evolution_breeds_from_the_best_parents(problem, estimator):
    """After the first generation, children come from the top parents: the population's best improves."""
    evo = make("evolution", seed=0).setup(problem)
    drive(evo, estimator, 12, batch=12)  # generation 0
    first_best = max(evo.history.scores)
    drive(evo, estimator, 40, batch=8)
    assert evo.generation >= 3
    assert max(evo.history.scores) > first_best


@pytest.mark.parametrize("objective", ["score", "reward"])
def test_single_objective_modes_find_the_best_feasible(objective, estimator):
    problem = synthetic_problem(objective=objective)
    all_scores = estimator.score(problem.array)
    f = problem.feasible_indices
    value = problem.rank_value(f, all_scores[f])
    best = problem.candidates[int(f[np.argmax(value)])]
    bo = make("bo", seed=0).setup(problem)
    asked = drive(bo, estimator, 30)
    rnd = drive(make("random", seed=0).setup(problem), estimator, 30)

    def top(archs):
        idx = np.array([problem.index(a) for a in archs])
        return problem.rank_value(idx, all_scores[idx]).max()

    assert top(asked) >= top(rnd)
    assert top(asked) >= value.max() - 0.05 * (value.max() - value.min())
    assert best in problem.candidates


@pytest.mark.slow
def test_bo_beats_random_on_average(estimator):
    """Averaged over seeds, BO reaches a higher hypervolume than random after the same evaluations."""
    problem = synthetic_problem(space="small", quantile=0.4)
    all_scores = estimator.score(problem.array)
    ref = float(all_scores[problem.feasible_indices].min())

    def hv(archs):
        idx = np.array([problem.index(a) for a in archs])
        return hypervolume_2d(all_scores[idx], problem.latency_ms[idx], ref_score=ref, ref_latency_ms=problem.budget_ms)

    bo = [hv(drive(make("bo", seed=s).setup(problem), estimator, 24, batch=4)) for s in (0, 1)]
    rnd = [hv(drive(make("random", seed=s).setup(problem), estimator, 24, batch=4)) for s in (0, 1)]
    assert np.mean(bo) > np.mean(rnd)
