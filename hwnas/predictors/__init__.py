"""Latency predictors: features, estimators, metrics, transfer and the portable bundle.

``load_predictor("cpu.hwnas")`` returns a :class:`LatencyPredictor` whose
``predict(archs, seq_len=128, batch_size=1)`` gives milliseconds. Heavy
imports (xgboost, scikit-learn) happen on first use.
"""

from __future__ import annotations

from typing import Any

from hwnas._lazy import lazy_getattr

_LAZY = {
    "LatencyPredictor": "hwnas.predictors.predictor", "OutOfDomainWarning": "hwnas.predictors.predictor",
    "save_bundle": "hwnas.predictors.bundle", "load_bundle": "hwnas.predictors.bundle",
    "Measurements": "hwnas.predictors.training", "load_measurements": "hwnas.predictors.training",
    "fit_predictor": "hwnas.predictors.training", "transfer_predictor": "hwnas.predictors.training",
    "evaluate_predictor": "hwnas.predictors.training", "featurize": "hwnas.predictors.features",
    "FEATURE_NAMES": "hwnas.predictors.features", "evaluate": "hwnas.predictors.metrics",
}

__all__ = ["load_predictor"] + list(_LAZY)


def load_predictor(path: Any, *, n_jobs: int = 1):
    """Load and verify a ``.hwnas`` bundle (see :func:`hwnas.predictors.bundle.load_bundle`)."""
    from hwnas.predictors.bundle import load_bundle

    return load_bundle(path, n_jobs=n_jobs)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
