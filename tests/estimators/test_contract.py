"""The contract every registered accuracy estimator keeps, run on all of them (real tiny models)."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.errors import InvalidArchitecture, InvalidConfig
from hwnas.estimators import ESTIMATORS, AccuracyEstimator, make_estimator
from hwnas.space import Architecture
from tests.estimators.conftest import context

ARCHS = [Architecture(1, 32, 2, 64), Architecture(2, 48, 4, 96), Architecture(2, 32, 4, 64)]


@pytest.fixture(params=ESTIMATORS.names())
def built(request, est_teacher, est_task, est_supernet, est_task_teacher, tmp_path):
    name = request.param
    return name, make_estimator(name, **context(name, est_teacher, est_task, est_supernet, tmp_path, est_task_teacher))


def test_registry_holds_the_documented_estimators():
    assert {"params", "flops", "wpca", "attn-confidence", "supernet-loss", "supernet-probe",
            "task-proxy", "distill-proxy"} <= set(ESTIMATORS.names())


def test_scores_are_finite_one_per_architecture_and_order_preserving(built):
    name, est = built
    assert isinstance(est, AccuracyEstimator) and est.name == name
    scores = est.score(ARCHS)
    assert scores.shape == (3,) and scores.dtype == np.float64 and np.all(np.isfinite(scores))
    reversed_scores = est.score(ARCHS[::-1])
    np.testing.assert_array_equal(reversed_scores, scores[::-1])
    # key strings and an n x 4 array name the same architectures
    np.testing.assert_array_equal(est.score([a.key for a in ARCHS]), scores)
    np.testing.assert_array_equal(est.score(np.array([a.as_tuple() for a in ARCHS])), scores)


def test_cost_is_recorded_and_cache_hits_do_not_count(built):
    _, est = built
    assert est.cost_per_arch_s is None
    est.score(ARCHS[:2])
    first = est.cost_per_arch_s
    assert first is not None and first >= 0
    est.score(ARCHS[:2])  # cached: no new work, the mean cost is unchanged
    assert est.cost_per_arch_s == first


def test_row_scores_are_offered_only_where_they_average_to_the_scores(built):
    """``has_row_scores`` is a promise: per-row values over the same rows whose means are the scores; without it,
    ``row_scores`` refuses in one line (the search's ``2se`` tie rule relies on both)."""
    _, est = built
    if est.has_row_scores():
        rows = est.row_scores(ARCHS)
        assert rows.ndim == 2 and rows.shape[0] == 3 and rows.shape[1] >= 2
        np.testing.assert_allclose(rows.mean(axis=1), est.score(ARCHS), atol=1e-6)
    else:
        with pytest.raises(InvalidConfig, match=r"has no per-row scores"):
            est.row_scores(ARCHS)


def test_a_fresh_instance_gives_the_same_scores(built, est_teacher, est_task, est_supernet, est_task_teacher, tmp_path):
    name, est = built
    again = make_estimator(name, **context(name, est_teacher, est_task, est_supernet, tmp_path / "other",
                                           est_task_teacher))
    np.testing.assert_allclose(again.score(ARCHS), est.score(ARCHS), rtol=1e-6, atol=1e-9)


def test_an_architecture_the_source_cannot_provide_is_refused(built):
    name, est = built
    if name in ("params", "flops"):
        pytest.skip("counting needs no weights: any valid architecture can be counted")
    with pytest.raises(InvalidArchitecture):
        est.score([Architecture(3, 64, 4, 128)])  # deeper than the tiny teacher and supernet


def test_unknown_estimator_is_one_line_naming_the_known_ones():
    with pytest.raises(InvalidConfig, match=r"unknown accuracy estimator 'nope'; known: params, flops"):
        make_estimator("nope")


@pytest.mark.parametrize("name,flag", [("supernet-loss", "--supernet"), ("task-proxy", "--task"),
                                       ("distill-proxy", "--task, --teacher")])
def test_missing_context_names_the_flag(name, flag):
    with pytest.raises(InvalidConfig, match=f"needs {flag}"):
        make_estimator(name)


def test_registry_refuses_a_duplicate_name():
    class Other(AccuracyEstimator):
        name = "params"

        def _score(self, archs):
            return np.zeros(len(archs))

    with pytest.raises(InvalidConfig, match="already registered"):
        ESTIMATORS.register("params")(Other)


def test_an_incomplete_estimator_cannot_be_built():
    class Incomplete(AccuracyEstimator):
        name = "incomplete"

    with pytest.raises(TypeError):
        Incomplete()
