"""Latency estimators with a scikit-learn interface.

Every estimator here takes ``X``, an ``n x k`` array (or a DataFrame) of raw
inputs whose columns are named by the ``inputs`` hyper-parameter (default
:data:`~hwnas.predictors.features.INPUTS`: layers, hidden, heads, ffn,
seq_len, batch_size), and ``y``, ``n`` measured latencies in milliseconds.
``predict`` returns milliseconds. Hyper-parameters are set only in
``__init__``; fitted state lives in attributes ending in ``_``; ``predict`` on
an unfitted estimator raises :class:`~hwnas.errors.NotFittedError` (scikit-learn's own).
Hyper-parameters are checked by scikit-learn's ``_parameter_constraints`` machinery at
``fit``. So ``sklearn.base.clone``, ``cross_val_score`` and ``GridSearchCV`` work as
usual, and the estimators are in the :data:`ESTIMATORS` registry (entry-point group
``hwnas.latency_estimators``), each a :class:`LatencyEstimator`.

* :class:`FlopsLinearRegressor`: latency = a + b * total FLOPs.
* :class:`CostLeastSquaresRegressor`: non-negative least squares on analytic
  cost terms per component (the physical model on its own).
* :class:`RandomForestLatencyRegressor`: a random forest on the raw dimensions
  (log target).
* :class:`XGBRawRegressor`: XGBoost on the raw dimensions alone (log target).
* :class:`PhysicsXGBRegressor`: the proposed predictor, the physical model
  corrected by XGBoost on the log residual, with monotone constraints and an
  upper bound calibrated on cross-fitted residuals (CV+ / jackknife+: see
  :func:`guaranteed_coverage` for what it guarantees).

With ``inputs`` set to other column names (a latency table a team already has),
the physical model is non-negative least squares on those columns and the
trees see them too.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._param_validation import Interval, InvalidParameterError

from hwnas._registry import Registry
from hwnas.errors import InvalidConfig, InvalidData, NotFittedError
from hwnas.predictors.features import INPUTS, featurize
from hwnas.predictors.metrics import mean_abs_log_ratio

__all__ = [
    "PHYSICS_TERMS", "TREE_FEATURES", "MONOTONE_FEATURES", "FlopsLinearRegressor", "CostLeastSquaresRegressor",
    "RandomForestLatencyRegressor", "XGBRawRegressor", "PhysicsXGBRegressor", "fit_nnls", "conformal_margin",
    "guaranteed_coverage", "UPPER_BOUND_METHOD", "tune", "default_grid", "ESTIMATORS", "LatencyEstimator",
]

#: Cost terms of the default physical model. ``layers`` and ``heads_layers`` carry
#: the fixed cost of launching the operators of every layer and head; the FLOP
#: groups scale differently with the shape (H^2, H*F, S^2*H, S^2*heads); the
#: byte terms separate weight traffic from arithmetic once batch or sequence vary.
PHYSICS_TERMS: tuple[str, ...] = (
    "layers", "heads_layers", "tokens", "proj_flops", "ffn_matmul_flops", "attn_matmul_flops", "attn_softmax_flops",
    "ffn_act_flops", "layernorm_flops", "encoder_param_bytes", "total_act_bytes",
)

#: What the residual trees see by default: the raw dimensions and shape.
TREE_FEATURES: tuple[str, ...] = INPUTS

#: Inputs in which latency cannot decrease (every cost term grows with them).
#: ``heads`` is left out: at a fixed width more heads mean smaller matrices.
MONOTONE_FEATURES: tuple[str, ...] = ("layers", "hidden", "ffn", "seq_len", "batch_size")


def _as_2d(X: Any, inputs: Sequence[str]) -> np.ndarray:
    """``X`` as an ``n x len(inputs)`` float64 array (DataFrames are selected by name)."""
    if hasattr(X, "columns"):
        missing = [c for c in inputs if c not in X.columns]
        if missing:
            raise InvalidData(f"input table lacks column(s) {missing}; expected {list(inputs)}")
        arr = X[list(inputs)].to_numpy(dtype=np.float64)
    else:
        arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(inputs):
        raise InvalidData(f"X must be an n x {len(inputs)} array with columns {list(inputs)}; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidData("X holds NaN or infinite values")
    return arr


def _check_y(y: Any, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.size != n:
        raise InvalidData(f"y must hold one latency per row of X; got {y.size} for {n} rows")
    if n == 0:
        raise InvalidData("cannot fit on zero samples")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise InvalidData("latencies must be positive finite numbers (milliseconds)")
    return y


def fit_nnls(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative coefficients ``c`` minimising ``sum(((A @ c) / y - 1) ** 2)``.

    Relative (not absolute) error, so 1 ms models count as much as 40 ms ones;
    non-negative, so every cost term can only add time. Columns are rescaled
    for conditioning and the scale is undone on the result.
    """
    from scipy.optimize import nnls

    Aw = A / y[:, None]
    scale = np.linalg.norm(Aw, axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(Aw / scale, np.ones(A.shape[0]), maxiter=50 * A.shape[1] + 100)
    return coef / scale


#: How the upper bound is calibrated, in the words the manifest records.
UPPER_BOUND_METHOD = ("one-sided conformal quantile of cross-fitted (out-of-fold) log(measured / predicted), "
                      "applied to the model refitted on all data (CV+ / jackknife+ family)")


def guaranteed_coverage(coverage: float) -> float:
    """The coverage the upper bound guarantees in the worst case: about ``1 - 2 * (1 - coverage)``.

    The margin is calibrated on cross-fitted residuals (each measurement predicted
    by a model that did not see it) and then applied to the model refitted on all
    data. That is the CV+ / jackknife+ construction (Barber, Candes, Ramdas and
    Tibshirani, 2021), whose finite-sample guarantee under exchangeability is
    ``1 - 2 alpha`` with ``alpha = 1 - coverage`` (K-fold CV+ loses a further
    term of order ``1 / n``), not split conformal's ``1 - alpha``, which needs a
    calibration set the final model never saw. Applying the margin to the
    refitted model rather than to each fold's model, as CV+ does, also assumes
    that the refitted model is no worse than the fold models. In practice such
    bounds usually cover close to ``coverage``; the held-out figures are in
    docs/predictors.md. 0.95 gives 0.90.
    """
    return max(0.0, 1.0 - 2.0 * (1.0 - float(coverage)))


def conformal_margin(log_residuals: np.ndarray, coverage: float) -> tuple[float, bool]:
    """The one-sided conformal margin on ``log(measured / predicted)``: the ``ceil((n + 1) * coverage)``-th smallest.

    Returns ``(q, exact)``: predicting ``pred * exp(q)`` covers a new measurement
    with probability at least ``coverage`` when the residuals come from a held-out
    calibration set (split conformal) and are exchangeable with the new one. The
    predictors here feed it cross-fitted residuals and apply it to a refitted
    model, which guarantees only :func:`guaranteed_coverage`. ``exact`` is False
    when there are too few residuals for that quantile (fewer than
    ``1 / (1 - coverage) - 1``); ``q`` is then the largest residual seen.
    """
    r = np.sort(np.asarray(log_residuals, dtype=np.float64))
    n = r.size
    if n == 0:
        return float("inf"), False
    k = math.ceil((n + 1) * coverage)
    if k > n:
        return float(r[-1]), False
    return float(r[k - 1]), True


class LatencyEstimator(RegressorMixin, BaseEstimator, ABC):
    """What every latency estimator is: a scikit-learn regressor from raw inputs to milliseconds.

    Subclasses declare their hyper-parameters in ``__init__`` and their ranges in
    ``_parameter_constraints`` (scikit-learn's format), call :meth:`_check_params` first
    in ``fit``, set ``n_samples_`` when fitted and call :meth:`_check_fitted` first in
    ``predict``. Shared here: input handling, the fitted check, the score (minus the mean
    |log ratio|).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    @abstractmethod
    def fit(self, X, y) -> LatencyEstimator:
        """Fit on ``X`` (``n x k`` raw inputs) and ``y`` (``n`` latencies, ms); returns ``self``."""

    @abstractmethod
    def predict(self, X) -> np.ndarray:
        """Latency in ms, an ``n``-vector."""

    def _check_params(self) -> None:
        """scikit-learn's parameter validation, raised as :class:`~hwnas.errors.InvalidConfig` (one line)."""
        try:
            self._validate_params()
        except InvalidParameterError as exc:
            raise InvalidConfig(str(exc)) from None

    def _fit_inputs(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Checks the hyper-parameters; ``X`` as an ``n x k`` float array, ``y`` as ``n`` positive latencies (ms)."""
        self._check_params()
        raw = _as_2d(X, self._inputs())
        return raw, _check_y(y, raw.shape[0])

    def _inputs(self) -> tuple[str, ...]:
        inputs = getattr(self, "inputs", None)
        return INPUTS if inputs is None else tuple(inputs)

    def _is_table(self) -> bool:
        return self._inputs() != INPUTS

    def _terms(self) -> tuple[str, ...]:
        """The physical model's cost terms: ``terms``, else a table's input columns, else :data:`PHYSICS_TERMS`."""
        if getattr(self, "terms", None) is not None:
            return tuple(self.terms)
        return self._inputs() if self._is_table() else PHYSICS_TERMS

    def _design(self, raw: np.ndarray) -> np.ndarray:
        """The physical model's design matrix: an intercept column, then the cost terms."""
        return np.column_stack([np.ones(raw.shape[0]), self._features(raw, self._terms())])

    def _features(self, raw: np.ndarray, names: Sequence[str], dtype: Any = np.float64) -> np.ndarray:
        """Named features of ``raw``: analytic ones for architectures, columns of a table."""
        if self._is_table():
            cols = self._inputs()
            unknown = [n for n in names if n not in cols]
            if unknown:
                raise InvalidConfig(f"feature(s) {unknown} are not input columns; inputs are {list(cols)}")
            return raw[:, [cols.index(n) for n in names]].astype(dtype, copy=False)
        return featurize(raw, names, dtype=dtype)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_samples_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, y) before predict")

    def score(self, X, y, sample_weight=None) -> float:
        """Minus the mean absolute log ratio (higher is better; 0 is perfect)."""
        return -mean_abs_log_ratio(y, self.predict(X))


class CostLeastSquaresRegressor(LatencyEstimator):
    """Physical model: latency = c0 + sum_k c_k * term_k, all c >= 0, relative least squares.

    Args:
        terms: cost terms (feature names; default :data:`PHYSICS_TERMS`, or every
            input column for a table).
        inputs: column names of ``X`` (default: architecture inputs).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"terms": [None, "array-like"], "inputs": [None, "array-like"]}

    def __init__(self, terms: Sequence[str] | None = None, inputs: Sequence[str] | None = None) -> None:
        self.terms = terms
        self.inputs = inputs

    def fit(self, X, y) -> CostLeastSquaresRegressor:
        raw, y = self._fit_inputs(X, y)
        A = self._design(raw)
        self.coef_ = fit_nnls(A, y)
        self.terms_ = self._terms()
        self.n_samples_ = raw.shape[0]
        return self

    def predict(self, X) -> np.ndarray:
        """Latency in ms, an ``n``-vector."""
        self._check_fitted()
        raw = _as_2d(X, self._inputs())
        return np.maximum(self._design(raw) @ self.coef_, 1e-9)


class FlopsLinearRegressor(CostLeastSquaresRegressor):
    """Baseline: latency = a + b * total FLOPs (a, b >= 0, relative least squares)."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"inputs": [None, "array-like"]}

    def __init__(self, inputs: Sequence[str] | None = None) -> None:
        self.inputs = inputs

    def _terms(self) -> tuple[str, ...]:
        if self._is_table():
            return self._inputs()[:1]
        return ("total_flops",)


class RandomForestLatencyRegressor(LatencyEstimator):
    """Baseline: scikit-learn's random forest on the raw inputs, fitted to log latency.

    Args:
        n_estimators, min_samples_leaf, max_features: as in
            ``sklearn.ensemble.RandomForestRegressor``.
        seed: random state.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "min_samples_leaf": [Interval(Integral, 1, None, closed="left")],
        "max_features": [Interval(Real, 0, 1, closed="right")], "seed": ["random_state"],
        "inputs": [None, "array-like"], "n_jobs": [None, Integral],
    }

    def __init__(self, n_estimators: int = 100, min_samples_leaf: int = 1, max_features: float = 1.0,
                 seed: int = 0, inputs: Sequence[str] | None = None, n_jobs: int = 1) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.seed = seed
        self.inputs = inputs
        self.n_jobs = n_jobs

    def fit(self, X, y) -> RandomForestLatencyRegressor:
        from sklearn.ensemble import RandomForestRegressor

        raw, y = self._fit_inputs(X, y)
        self.model_ = RandomForestRegressor(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features, random_state=self.seed, n_jobs=self.n_jobs,
        ).fit(raw, np.log(y))
        self.n_samples_ = raw.shape[0]
        return self

    def predict(self, X) -> np.ndarray:
        self._check_fitted()
        return np.exp(self.model_.predict(_as_2d(X, self._inputs())))


def _xgb_train(Z: np.ndarray, target: np.ndarray, names: Sequence[str], *, n_estimators: int, max_depth: int,
               learning_rate: float, min_child_weight: float, subsample: float, reg_lambda: float,
               monotone: Mapping[str, int] | None, seed: int, n_jobs: int):
    import xgboost as xgb

    params: dict[str, Any] = {
        "objective": "reg:squarederror",
        "max_depth": int(max_depth),
        "eta": float(learning_rate),
        "min_child_weight": float(min_child_weight),
        "subsample": float(subsample),
        "lambda": float(reg_lambda),
        "tree_method": "exact",
        "seed": int(seed),
        "nthread": int(n_jobs),
        # the residual's mean is learnt by the first trees; a fixed 0 keeps the
        # saved model's output equal to the correction itself
        "base_score": 0.0,
    }
    if monotone:
        params["monotone_constraints"] = "(" + ",".join(str(int(monotone.get(n, 0))) for n in names) + ")"
    dtrain = xgb.DMatrix(Z, label=target, feature_names=list(names), nthread=int(n_jobs))
    return xgb.train(params, dtrain, num_boost_round=int(n_estimators))


class XGBRawRegressor(LatencyEstimator):
    """Baseline: XGBoost on the raw inputs alone, fitted to log latency (no physics)."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "max_depth": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, 1, closed="right")],
        "min_child_weight": [Interval(Real, 0, None, closed="left")],
        "subsample": [Interval(Real, 0, 1, closed="right")], "reg_lambda": [Interval(Real, 0, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")], "inputs": [None, "array-like"],
        "n_jobs": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_estimators: int = 200, max_depth: int = 4, learning_rate: float = 0.1,
                 min_child_weight: float = 1.0, subsample: float = 1.0, reg_lambda: float = 1.0,
                 seed: int = 0, inputs: Sequence[str] | None = None, n_jobs: int = 1) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.reg_lambda = reg_lambda
        self.seed = seed
        self.inputs = inputs
        self.n_jobs = n_jobs

    def fit(self, X, y) -> XGBRawRegressor:
        raw, y = self._fit_inputs(X, y)
        ly = np.log(y)
        self.offset_ = float(np.mean(ly))
        self.booster_ = _xgb_train(
            raw.astype(np.float32), ly - self.offset_, self._inputs(), n_estimators=self.n_estimators,
            max_depth=self.max_depth, learning_rate=self.learning_rate, min_child_weight=self.min_child_weight,
            subsample=self.subsample, reg_lambda=self.reg_lambda, monotone=None, seed=self.seed, n_jobs=self.n_jobs,
        )
        self.n_samples_ = raw.shape[0]
        return self

    def predict(self, X) -> np.ndarray:
        self._check_fitted()
        raw = _as_2d(X, self._inputs()).astype(np.float32)
        return np.exp(self.offset_ + self.booster_.inplace_predict(raw))


class PhysicsXGBRegressor(LatencyEstimator):
    """The physical model, corrected by XGBoost on the log residual.

    ``latency_ms = physics(x) * exp(trees(x))`` where ``physics`` is
    :class:`CostLeastSquaresRegressor` and the trees fit
    ``log(measured / physics)``. Trees cannot extrapolate, so the physics
    carries the scale and the trees only a small correction; beyond the
    training range the correction stays at its value at the edge.

    Args:
        terms: the physical model's cost terms (default :data:`PHYSICS_TERMS`).
        tree_features: what the trees see (default :data:`TREE_FEATURES`).
        n_estimators, max_depth, learning_rate, min_child_weight, subsample,
            reg_lambda: XGBoost hyper-parameters of the correction.
        monotone: constrain the correction to be non-decreasing in
            :data:`MONOTONE_FEATURES`. The physical model has non-negative
            coefficients on terms that grow with those inputs, so the whole
            prediction is then non-decreasing in them too.
        coverage: the nominal probability that a new measurement lies below
            :meth:`predict_upper` (``None``: no calibration, faster fits); the
            guarantee that holds is :func:`guaranteed_coverage` of it.
        n_folds: folds of the cross-fitting that calibrates the upper bound.
        seed: seeds XGBoost and the folds.
        inputs: column names of ``X`` (default: architecture inputs).
        n_jobs: XGBoost threads.

    Fitted attributes: ``physics_coef_`` (intercept first, ms and ms per unit of
    each term), ``terms_``, ``tree_features_``, ``booster_`` (an
    ``xgboost.Booster``), ``log_margin_`` (margin on the log ratio, from cross-fitted residuals),
    ``margin_exact_``, ``oof_pred_`` (cross-fitted predictions of the training
    rows, ms), ``n_samples_``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **XGBRawRegressor._parameter_constraints, "terms": [None, "array-like"], "tree_features": [None, "array-like"],
        "monotone": ["boolean"], "coverage": [None, Interval(Real, 0, 1, closed="neither")],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(self, terms: Sequence[str] | None = None, tree_features: Sequence[str] | None = None,
                 n_estimators: int = 100, max_depth: int = 3, learning_rate: float = 0.1,
                 min_child_weight: float = 1.0, subsample: float = 1.0, reg_lambda: float = 1.0,
                 monotone: bool = True, coverage: float | None = 0.95, n_folds: int = 5, seed: int = 0,
                 inputs: Sequence[str] | None = None, n_jobs: int = 1) -> None:
        self.terms = terms
        self.tree_features = tree_features
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.reg_lambda = reg_lambda
        self.monotone = monotone
        self.coverage = coverage
        self.n_folds = n_folds
        self.seed = seed
        self.inputs = inputs
        self.n_jobs = n_jobs

    # ------------------------------------------------------------ config
    def _tree_features(self) -> tuple[str, ...]:
        if self.tree_features is not None:
            return tuple(self.tree_features)
        return self._inputs() if self._is_table() else TREE_FEATURES

    def monotone_constraints(self) -> dict[str, int]:
        """``{tree feature: +1}`` for every constrained tree feature ({} when ``monotone`` is off)."""
        if not self.monotone:
            return {}
        return {n: 1 for n in self._tree_features() if n in MONOTONE_FEATURES}

    # --------------------------------------------------------------- fit
    def _fit_once(self, raw: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, Any]:
        A = self._design(raw)
        coef = fit_nnls(A, y)
        phys = np.maximum(A @ coef, 1e-9)
        Z = self._features(raw, self._tree_features(), dtype=np.float32)
        booster = _xgb_train(
            Z, np.log(y / phys), self._tree_features(), n_estimators=self.n_estimators, max_depth=self.max_depth,
            learning_rate=self.learning_rate, min_child_weight=self.min_child_weight, subsample=self.subsample,
            reg_lambda=self.reg_lambda, monotone=self.monotone_constraints(), seed=self.seed, n_jobs=self.n_jobs,
        )
        return coef, booster

    def _predict_with(self, coef: np.ndarray, booster: Any, raw: np.ndarray) -> np.ndarray:
        A = self._design(raw)
        phys = np.maximum(A @ coef, 1e-9)
        Z = self._features(raw, self._tree_features(), dtype=np.float32)
        return phys * np.exp(booster.inplace_predict(Z))

    def fit(self, X, y) -> PhysicsXGBRegressor:
        """Fit on ``X`` (``n x k`` inputs) and ``y`` (``n`` latencies, ms)."""
        raw, y = self._fit_inputs(X, y)
        self.physics_coef_, self.booster_ = self._fit_once(raw, y)
        self.terms_ = self._terms()
        self.tree_features_ = self._tree_features()
        self.oof_pred_ = None
        self.log_margin_, self.margin_exact_ = float("nan"), False
        if self.coverage is not None:
            self.oof_pred_ = self._cross_fit(raw, y)
            self.log_margin_, self.margin_exact_ = conformal_margin(np.log(y / self.oof_pred_), float(self.coverage))
        self.n_samples_ = raw.shape[0]
        return self

    def _cross_fit(self, raw: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Out-of-fold predictions (ms): each row predicted by a model that never saw it."""
        from sklearn.model_selection import KFold

        n = raw.shape[0]
        folds = min(int(self.n_folds), n)
        out = np.empty(n)
        if folds < 2:
            out[:] = self._predict_with(self.physics_coef_, self.booster_, raw)
            return out
        for train, test in KFold(folds, shuffle=True, random_state=self.seed).split(raw):
            coef, booster = self._fit_once(raw[train], y[train])
            out[test] = self._predict_with(coef, booster, raw[test])
        return out

    # ----------------------------------------------------------- predict
    def predict(self, X) -> np.ndarray:
        """Latency in ms, an ``n``-vector."""
        self._check_fitted()
        return self._predict_with(self.physics_coef_, self.booster_, _as_2d(X, self._inputs()))

    def predict_upper(self, X) -> np.ndarray:
        """Upper bound in ms that a new measurement stays below with nominal probability ``coverage``
        (guaranteed: :func:`guaranteed_coverage`)."""
        self._check_fitted()
        if self.coverage is None:
            raise NotFittedError("this predictor was fitted with coverage=None: it has no calibrated upper bound")
        return self.predict(X) * math.exp(self.log_margin_)


#: Every latency estimator by name, in the order benchmarks print them (entry-point group
#: ``hwnas.latency_estimators``; a plugin's class must subclass :class:`LatencyEstimator`).
ESTIMATORS: Registry[type[LatencyEstimator]] = Registry(
    "latency estimator", entry_point_group="hwnas.latency_estimators", base=LatencyEstimator,
    builtins={
        "flops-linear": FlopsLinearRegressor, "cost-lstsq": CostLeastSquaresRegressor,
        "random-forest": RandomForestLatencyRegressor, "xgb-raw": XGBRawRegressor, "physics-xgb": PhysicsXGBRegressor,
    },
)


def default_grid(estimator: BaseEstimator) -> dict[str, list[Any]]:
    """The hyper-parameter grid searched by :func:`tune` for each estimator class."""
    if isinstance(estimator, PhysicsXGBRegressor):
        return {"n_estimators": [25, 50, 100, 200], "max_depth": [2, 3, 4], "monotone": [True, False]}
    if isinstance(estimator, XGBRawRegressor):
        return {"n_estimators": [100, 300], "max_depth": [3, 5]}
    if isinstance(estimator, RandomForestLatencyRegressor):
        return {"min_samples_leaf": [1, 3], "max_features": [0.5, 1.0]}
    return {}


def _complexity(params: Mapping[str, Any]) -> float:
    """Prediction cost of a configuration: trees x leaves (smaller is cheaper)."""
    return float(params.get("n_estimators", 1)) * 2.0 ** float(params.get("max_depth", 0))


def tune(estimator: BaseEstimator, X, y, *, grid: Mapping[str, Sequence[Any]] | None = None, n_folds: int = 5,
         seed: int = 0, complexity: Callable[[Mapping[str, Any]], float] = _complexity):
    """Choose hyper-parameters by seeded K-fold cross-validation, then refit on everything.

    The criterion is the mean absolute log ratio of predicted to measured
    latency. Among configurations within one standard error of the best, the
    cheapest to evaluate wins (the one-standard-error rule), so prediction
    stays fast when a bigger model is not measurably better.

    Returns:
        ``(fitted_estimator, cv_results)``: the refitted clone and a list of
        ``{"params", "mean_log_error", "se"}`` rows.
    """
    from sklearn.base import clone
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV, KFold

    grid = default_grid(estimator) if grid is None else dict(grid)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 4 or not grid:
        return clone(estimator).fit(X, y), []
    folds = min(n_folds, n // 2)
    fast = clone(estimator)
    if "coverage" in fast.get_params():
        fast.set_params(coverage=None)  # calibration is done once, on the final fit
    search = GridSearchCV(
        fast, grid, scoring=make_scorer(mean_abs_log_ratio, greater_is_better=False),
        cv=KFold(folds, shuffle=True, random_state=seed), refit=False, n_jobs=1,
    )
    search.fit(X, y)
    res = search.cv_results_
    mean = -np.asarray(res["mean_test_score"], dtype=float)
    se = np.asarray(res["std_test_score"], dtype=float) / math.sqrt(folds)
    best = int(np.argmin(mean))
    ok = np.flatnonzero(mean <= mean[best] + se[best])
    chosen = int(min(ok, key=lambda i: (complexity(res["params"][i]), mean[i])))
    final = clone(estimator).set_params(**res["params"][chosen]).fit(X, y)
    rows = [{"params": dict(p), "mean_log_error": float(m), "se": float(s)} for p, m, s in zip(res["params"], mean, se, strict=True)]
    final.cv_chosen_ = rows[chosen]
    return final, rows
