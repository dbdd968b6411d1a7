"""Estimator contract (fit, predict, unfitted refusal, clone) for every estimator, and the pieces."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from hwnas.errors import InvalidConfig, InvalidData, NotFittedError
from hwnas.predictors.estimators import (
    ESTIMATORS,
    LatencyEstimator,
    PhysicsXGBRegressor,
    conformal_margin,
    fit_nnls,
    tune,
)
from hwnas.predictors.predictor import SmallBatchTrees

# Small settings so the contract runs fast; defaults are exercised by the bundle tests.
FAST = {
    "random-forest": {"n_estimators": 20},
    "xgb-raw": {"n_estimators": 20},
    "physics-xgb": {"n_estimators": 20, "n_folds": 3},
}


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_contract(name, synthetic):
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError

    est = ESTIMATORS[name](**FAST.get(name, {}))
    assert isinstance(est, LatencyEstimator)
    X, y = synthetic.X, synthetic.y
    with pytest.raises(NotFittedError, match="not fitted") as info:
        est.predict(X)
    assert isinstance(info.value, SklearnNotFittedError)  # scikit-learn's own, so sklearn tools recognise it
    fitted = est.fit(X, y)
    assert fitted is est
    pred = est.predict(X)
    assert pred.shape == (len(y),) and np.all(np.isfinite(pred)) and np.all(pred > 0)
    # a known law: the in-sample error is far below that of a constant guess
    const = np.full_like(y, np.exp(np.mean(np.log(y))))
    assert np.mean(np.abs(np.log(pred / y))) < 0.5 * np.mean(np.abs(np.log(const / y)))
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "n_samples_")
    with pytest.raises(NotFittedError):
        twin.predict(X)
    # the score is minus the mean |log ratio| of its own predictions (so GridSearchCV maximises accuracy)
    assert est.score(X, y) == pytest.approx(-np.mean(np.abs(np.log(pred / y))))
    with pytest.raises(InvalidData, match="one latency per row"):
        clone(est).fit(X, y[:-1])
    with pytest.raises(InvalidData, match="positive"):
        clone(est).fit(X, -y)
    with pytest.raises(InvalidData, match="n x 6"):
        est.predict(X[:, :4])


def test_dataframe_inputs_are_selected_by_name(measurements):
    import pandas as pd

    from hwnas.predictors.features import INPUTS

    df = pd.DataFrame(measurements.X, columns=INPUTS)[list(reversed(INPUTS))]
    est = ESTIMATORS["cost-lstsq"]().fit(df, measurements.y)
    np.testing.assert_allclose(est.predict(df), est.predict(measurements.X))
    with pytest.raises(InvalidData, match="lacks column"):
        est.predict(df.drop(columns=["ffn"]))


def test_nnls_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 10, size=(40, 2))
    y = 2.0 + 3.0 * x[:, 0] + 0.5 * x[:, 1]
    coef = fit_nnls(np.column_stack([np.ones(40), x]), y)
    np.testing.assert_allclose(coef, [2.0, 3.0, 0.5], rtol=1e-6)
    # a term that would need a negative weight gets zero
    coef = fit_nnls(np.column_stack([np.ones(40), x]), 20.0 - x[:, 0])
    assert np.all(coef >= 0) and coef[1] == 0.0


def test_conformal_margin_hand_values():
    r = np.arange(1, 20) / 100.0  # 19 residuals: 0.01 .. 0.19
    q, exact = conformal_margin(r, 0.9)  # ceil(20 * 0.9) = 18th smallest
    assert exact and q == pytest.approx(0.18)
    q, exact = conformal_margin(r[:5], 0.95)  # too few for 95%: the largest, flagged
    assert not exact and q == pytest.approx(0.05)


def test_upper_bound_and_monotone_prediction(measurements, synthetic):
    est = PhysicsXGBRegressor(n_estimators=30, n_folds=3, monotone=True).fit(measurements.X, measurements.y)
    X = measurements.X
    assert np.all(est.predict_upper(X) > est.predict(X))
    assert est.oof_pred_.shape == (len(X),)
    assert est.monotone_constraints() == {"layers": 1, "hidden": 1, "ffn": 1, "seq_len": 1, "batch_size": 1}
    # non-decreasing in layers and ffn across the whole trained range
    grid = np.array([[layers, 160, 4, ffn, 128, 1] for ffn in (256, 512, 768) for layers in (1, 2, 3)])
    pred = est.predict(grid).reshape(3, 3)
    assert np.all(np.diff(pred, axis=1) >= 0) and np.all(np.diff(pred, axis=0) >= 0)
    # on a known law the calibrated bound covers about its nominal share
    good = PhysicsXGBRegressor(n_estimators=30, n_folds=5).fit(synthetic.X, synthetic.y)
    covered = np.mean(synthetic.y <= good.oof_pred_ * np.exp(good.log_margin_))
    assert 0.9 <= covered <= 1.0
    assert np.mean(np.abs(good.oof_pred_ / synthetic.y - 1) <= 0.05) > 0.9


def test_invalid_hyperparameters_are_refused(measurements):
    for params, match in (({"n_estimators": 0}, "n_estimators"), ({"learning_rate": 0}, "learning_rate"),
                          ({"coverage": 1.5}, "coverage"), ({"n_folds": 1}, "n_folds")):
        with pytest.raises(InvalidConfig, match=f"The '{match}' parameter of PhysicsXGBRegressor must be"):
            PhysicsXGBRegressor(**params).fit(measurements.X, measurements.y)
    # scikit-learn's own wording: the parameter, the class, what is allowed and what was given
    with pytest.raises(InvalidConfig, match=r"^The 'max_depth' parameter of XGBRawRegressor must be an int in the range "
                                            r"\[1, inf\)\. Got 0 instead\.$"):
        ESTIMATORS["xgb-raw"](max_depth=0).fit(measurements.X, measurements.y)
    with pytest.raises(InvalidConfig, match="'max_features' parameter of RandomForestLatencyRegressor"):
        ESTIMATORS["random-forest"](max_features=2.0).fit(measurements.X, measurements.y)


def test_tune_is_seeded_and_picks_from_the_grid(measurements):
    grid = {"n_estimators": [10, 30], "max_depth": [2, 3]}
    a, rows = tune(PhysicsXGBRegressor(n_folds=3), measurements.X, measurements.y, grid=grid, n_folds=3, seed=1)
    b, _ = tune(PhysicsXGBRegressor(n_folds=3), measurements.X, measurements.y, grid=grid, n_folds=3, seed=1)
    assert len(rows) == 4
    assert a.cv_chosen_ == b.cv_chosen_
    # the one-standard-error rule: the chosen configuration is within one SE of the best, and no
    # configuration in that band is cheaper (trees x 2^depth); the final fit uses it
    best = min(rows, key=lambda r: r["mean_log_error"])
    chosen = a.cv_chosen_
    assert chosen["mean_log_error"] <= best["mean_log_error"] + best["se"]
    band = [r for r in rows if r["mean_log_error"] <= best["mean_log_error"] + best["se"]]

    def cost(p):
        return p["n_estimators"] * 2 ** p["max_depth"]

    assert cost(chosen["params"]) == min(cost(r["params"]) for r in band)
    assert {k: a.get_params()[k] for k in grid} == chosen["params"]
    assert sorted((r["params"]["n_estimators"], r["params"]["max_depth"]) for r in rows) == [(10, 2), (10, 3), (30, 2), (30, 3)]
    np.testing.assert_array_equal(a.predict(measurements.X), b.predict(measurements.X))


def test_numpy_tree_walk_matches_xgboost(measurements):
    est = PhysicsXGBRegressor(n_estimators=40, max_depth=4, coverage=None).fit(measurements.X, measurements.y)
    trees = SmallBatchTrees.from_booster(est.booster_)
    assert trees is not None and trees.depth <= 4
    rng = np.random.default_rng(0)
    z = np.column_stack([rng.integers(1, 8, 300), rng.integers(64, 400, 300), rng.choice([2, 4, 8], 300),
                         rng.integers(128, 2000, 300), rng.choice([64, 128], 300), np.ones(300)]).astype(np.float32)
    np.testing.assert_allclose(trees(z), est.booster_.inplace_predict(z), atol=1e-6)


def test_table_inputs(measurements):
    cols = ("a", "b")
    x = measurements.X[:, [0, 3]] * measurements.X[:, [1, 1]]  # two cost-like columns
    est = PhysicsXGBRegressor(inputs=cols, n_estimators=10, n_folds=3).fit(x, measurements.y)
    assert est.terms_ == cols and est.tree_features_ == cols
    assert est.predict(x).shape == (len(x),)


# scikit-learn's estimator checks that apply to estimators whose inputs are named columns (an n x 6
# array of architecture dimensions) and whose targets are positive latencies. The checks that fit on
# random data of any width and sign do not apply; these are the API checks, run on every estimator.
SKLEARN_CHECKS = ("check_estimator_cloneable", "check_estimator_repr", "check_no_attributes_set_in_init",
                  "check_parameters_default_constructible", "check_get_params_invariance", "check_set_params",
                  "check_estimators_unfitted", "check_do_not_raise_errors_in_init_or_set_params")


@pytest.mark.parametrize("check", SKLEARN_CHECKS)
@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_sklearn_estimator_checks(name, check):
    import sklearn.utils.estimator_checks as checks

    getattr(checks, check)(name, ESTIMATORS[name]())


def test_fit_check_is_fitted_with_sklearn(synthetic):
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils.validation import check_is_fitted

    for name in ESTIMATORS.names():
        est = ESTIMATORS[name](**FAST.get(name, {}))
        with pytest.raises(SklearnNotFittedError):
            check_is_fitted(est)
        check_is_fitted(est.fit(synthetic.X, synthetic.y))


def test_an_incomplete_latency_estimator_cannot_be_built():
    class NoPredict(LatencyEstimator):
        def fit(self, X, y):
            return self

    with pytest.raises(TypeError, match="abstract"):
        NoPredict()
