"""The tie rule: the winner among candidates the accuracy estimate cannot separate (hwnas.search.ties).

The estimators here score every architecture as the mean of per-row hits over the
same held-out rows, as distill-proxy does, with hits chosen so that the paired
standard error of each difference is known exactly.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hwnas.errors import InvalidConfig
from hwnas.estimators.base import AccuracyEstimator
from hwnas.search import run_search
from hwnas.search.ties import TieRule, parse_tie_margin

from .conftest import synthetic_problem

ROWS = 400


class RowHits(AccuracyEstimator):
    """Per-row hits over ROWS rows: the more parameters, the *fewer* hits (so the plain rule and the tie rule differ).

    The architecture with the most parameters among the feasible ones misses ``gap`` more rows than the one with
    the fewest; every row it misses, the other gets right (the other rows agree), so a difference of ``k`` rows has
    paired standard error ``sqrt(k/n - (k/n)^2) * sqrt(n/(n-1)) / sqrt(n)``.
    """

    name = "row-hits"

    def __init__(self, params_lo: float, params_hi: float, gap: int) -> None:
        super().__init__()
        self.lo, self.hi, self.gap = float(params_lo), float(params_hi), int(gap)

    def _misses(self, arch) -> int:
        t = (arch.num_parameters() - self.lo) / max(self.hi - self.lo, 1.0)
        return int(round(np.clip(t, 0.0, 1.0) * self.gap))

    def _rows(self, arch) -> np.ndarray:
        hits = np.ones(ROWS)
        hits[: ROWS // 4] = 0.0  # rows every student misses
        misses = self._misses(arch)
        hits[ROWS // 4: ROWS // 4 + misses] = 0.0
        return hits

    def _score(self, archs):
        return np.array([self._rows(a).mean() for a in archs])

    def has_row_scores(self) -> bool:
        return True

    def row_scores(self, archs):
        from hwnas.space import as_architectures

        return np.stack([self._rows(a) for a in as_architectures(archs)])


def _setup(gap: int):
    problem = synthetic_problem()
    feasible = np.flatnonzero(problem.feasible)
    params = problem.params[feasible]
    return problem, RowHits(params.min(), params.max(), gap), feasible


def _se_of_difference(k: int, n: int = ROWS) -> float:
    p = k / n  # d is 1 on k rows, 0 elsewhere
    return math.sqrt(p * (1 - p) * n / (n - 1)) / math.sqrt(n)


@pytest.mark.parametrize(("text", "margin", "se"), [
    (None, None, None), ("none", None, None), ("0.005", 0.005, None), (0, 0.0, None), ("2se", None, 2.0),
    (" 1.5SE ", None, 1.5), ("0.5se", None, 0.5),
])
def test_parse_tie_margin_accepts_numbers_and_multiples_of_the_standard_error(text, margin, se):
    rule = parse_tie_margin(text)
    if margin is None and se is None:
        assert rule is None
    else:
        assert (rule.margin, rule.se_multiple) == (margin, se)
        assert parse_tie_margin(str(rule)) == rule  # the text form reads back


@pytest.mark.parametrize("text", ["-0.1", "0se", "-2se", "nan", "inf", "two", "2 sd", "se"])
def test_parse_tie_margin_refuses_anything_else_in_one_line(text):
    with pytest.raises(InvalidConfig, match=r"^--tie-margin must be a score difference >= 0 \(e\.g\. 0\.005\) or a "
                                            r"positive multiple of the paired standard error \(e\.g\. 2se\); got "):
        parse_tie_margin(text, "--tie-margin")


def test_without_a_rule_the_best_score_wins_and_with_one_the_most_parameters_among_the_tied(problem):
    problem, est, _ = _setup(gap=8)
    plain = run_search(problem, est, strategy="random", evaluations=40, seed=3)
    evaluated = plain.evaluated[plain.evaluated.feasible]
    assert plain.winner.score == evaluated.score.max()
    # a margin wider than every gap ties them all: the most parameters among the evaluated feasible wins
    wide = run_search(problem, est, strategy="random", evaluations=40, seed=3, ties=0.5)
    assert wide.winner.params == evaluated.params.max() and wide.winner.params > plain.winner.params
    assert len(wide.config["ties"]["tied"]) == len(evaluated)
    # margin 0: only equal values tie, so the winner has the best score (and the most parameters among equals)
    zero = run_search(problem, est, strategy="random", evaluations=40, seed=3, ties=0.0)
    assert zero.winner.score == plain.winner.score
    best = evaluated[evaluated.score == evaluated.score.max()]
    assert zero.winner.params == best.params.max()


def test_the_standard_error_rule_ties_only_differences_within_k_paired_standard_errors():
    problem, est, _ = _setup(gap=40)  # the largest student misses 40 more rows than the smallest
    res = run_search(problem, est, strategy="random", evaluations=60, seed=1, ties="2se")
    ties = res.config["ties"]
    evaluated = res.evaluated[res.evaluated.feasible].reset_index(drop=True)
    best_misses = est._misses(problem.candidates[problem.index(_arch(ties["best"]))])
    for row in evaluated.itertuples():
        arch = problem.candidates[problem.index(_arch_of(row))]
        k = est._misses(arch) - best_misses  # rows where the best is right and this one wrong
        expected_tied = k / ROWS <= 2 * _se_of_difference(k) + 1e-12 if k else True
        assert (arch.key in ties["tied"]) == expected_tied, (arch.key, k)
    # some are tied and some are not, and the winner is the tied one with the most parameters
    assert 1 < len(ties["tied"]) < len(evaluated)
    tied_params = [problem.params[problem.index(_arch(k))] for k in ties["tied"]]
    assert res.winner.params == max(tied_params) and res.winner.arch.key == ties["winner"]
    # more standard errors tie more candidates
    wider = run_search(problem, est, strategy="random", evaluations=60, seed=1, ties="4se")
    assert set(ties["tied"]) < set(wider.config["ties"]["tied"])


def test_the_rule_is_written_into_config_and_winner_json_and_survives_a_resume(tmp_path):
    problem, est, _ = _setup(gap=8)
    out = tmp_path / "run"
    first = run_search(problem, est, strategy="random", evaluations=10, seed=2, out=out, ties="2se")
    config = json.loads((out / "config.json").read_text())
    winner = json.loads((out / "winner.json").read_text())
    assert config["ties"]["text"] == "2se" and config["ties"]["winner"] == first.winner.arch.key
    assert winner["ties"] == config["ties"] and winner["arch"]["layers"] == first.winner.arch.layers
    again = run_search(problem, est, strategy="random", evaluations=20, seed=2, out=out, ties="2se", resume=True)
    assert len(again.evaluated) == 20 and json.loads((out / "winner.json").read_text())["ties"]["text"] == "2se"


def test_the_standard_error_rule_needs_an_estimator_with_per_row_scores(problem):
    from hwnas.estimators import make_estimator

    params = make_estimator("params")
    assert not params.has_row_scores()
    with pytest.raises(InvalidConfig, match=r"tie margin 2se needs an estimator that scores every architecture on "
                                            r"the same held-out rows .*estimator params does not; give a score "
                                            r"difference instead"):
        run_search(problem, params, strategy="random", evaluations=4, ties="2se")
    with pytest.raises(InvalidConfig, match="has no per-row scores"):
        params.row_scores([problem.candidates[0]])
    # a fixed margin works with any estimator
    res = run_search(problem, params, strategy="random", evaluations=4, ties=0.0)
    assert res.winner is not None


def test_tie_rule_checks_its_own_arguments():
    with pytest.raises(InvalidConfig, match="one of margin and se_multiple"):
        TieRule(margin=0.1, se_multiple=2.0)
    with pytest.raises(InvalidConfig, match="one of margin and se_multiple"):
        TieRule()
    with pytest.raises(InvalidConfig, match="per-row scores must be one row of at least 2 values per candidate"):
        TieRule(se_multiple=2).tied(np.array([0.5, 0.4]), lambda pos: np.zeros((2, 1)))


def _arch(key: str):
    from hwnas.space import Architecture

    return Architecture.parse(key)


def _arch_of(row):
    from hwnas.space import Architecture

    return Architecture(int(row.layers), int(row.hidden), int(row.heads), int(row.ffn))
