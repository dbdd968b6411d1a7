"""Accuracy metrics of latency predictions, and the extrapolation split.

All functions take 1-D arrays of equal length ``n``: measured latencies
``y_true`` and predictions ``y_pred`` in the same unit (milliseconds in hwnas).
Shares are fractions in [0, 1]; ``mape`` is a fraction too (0.05 = 5%).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.errors import InvalidData

__all__ = [
    "within", "mape", "rmse", "kendall_tau", "spearman_rho", "mean_abs_log_ratio", "evaluate", "extrapolation_split",
    "METRIC_NAMES",
]

#: Keys of :func:`evaluate`, in display order.
METRIC_NAMES: tuple[str, ...] = ("n", "within_5", "within_10", "mape", "rmse_ms", "kendall_tau", "spearman_rho")


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise InvalidData(f"y_true and y_pred must have the same length; got {t.size} and {p.size}")
    if t.size == 0:
        raise InvalidData("cannot compute a metric on zero samples")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise InvalidData("latencies must be finite numbers")
    if np.any(t <= 0):
        raise InvalidData("measured latencies must be positive")
    return t, p


def within(y_true, y_pred, tol: float) -> float:
    """Share of predictions whose relative error ``|pred / true - 1|`` is at most ``tol``."""
    t, p = _pair(y_true, y_pred)
    # A tiny slack so that an error of exactly tol (e.g. 110 vs 100 at 10%) counts
    # as within despite binary floating point.
    return float(np.mean(np.abs(p / t - 1.0) <= tol + 1e-12))


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, as a fraction: ``mean(|pred - true| / true)``."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t) / t))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error, in the unit of the inputs."""
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mean_abs_log_ratio(y_true, y_pred) -> float:
    """``mean(|log(pred / true)|)``: a symmetric relative error (the CV criterion)."""
    t, p = _pair(y_true, y_pred)
    if np.any(p <= 0):
        return float("inf")
    return float(np.mean(np.abs(np.log(p / t))))


def kendall_tau(y_true, y_pred) -> float:
    """Kendall's tau-b rank correlation (ties handled as in ``scipy.stats.kendalltau``)."""
    from scipy.stats import kendalltau

    t, p = _pair(y_true, y_pred)
    if t.size < 2:
        return float("nan")
    return float(kendalltau(t, p).statistic)


def spearman_rho(y_true, y_pred) -> float:
    """Spearman's rank correlation."""
    from scipy.stats import spearmanr

    t, p = _pair(y_true, y_pred)
    if t.size < 2:
        return float("nan")
    return float(spearmanr(t, p).statistic)


def evaluate(y_true, y_pred) -> dict[str, float]:
    """Every metric of :data:`METRIC_NAMES` in one dictionary."""
    t, p = _pair(y_true, y_pred)
    return {
        "n": int(t.size), "within_5": within(t, p, 0.05), "within_10": within(t, p, 0.10), "mape": mape(t, p),
        "rmse_ms": rmse(t, p), "kendall_tau": kendall_tau(t, p), "spearman_rho": spearman_rho(t, p),
    }


def extrapolation_split(
    x: np.ndarray, columns: Sequence[int] = (0, 1), *, names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split rows so that the test rows are deeper or wider than every training row.

    For each chosen column (default: layers and hidden of an ``n x 6`` input
    array), rows at the column's largest value go to the test side; the rest,
    whose every chosen column is below that value, train.

    Returns:
        ``(train_mask, test_mask)``, boolean ``n``-vectors.

    Raises:
        InvalidData: a chosen column has a single value, so nothing can be held out.
    """
    x = np.asarray(x)
    test = np.zeros(x.shape[0], dtype=bool)
    for c in columns:
        col = x[:, c]
        if np.unique(col).size < 2:
            label = names[c] if names is not None else f"column {c}"
            raise InvalidData(f"cannot make an extrapolation split: {label} has a single value")
        test |= col == col.max()
    return ~test, test
