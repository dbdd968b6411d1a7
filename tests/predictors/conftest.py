"""Fixtures of the predictor tests: a real (tiny) CPU profile committed under data/."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
PROFILE = DATA / "cpu-tiny.jsonl"


@pytest.fixture(scope="session")
def profile_path() -> Path:
    """30 architectures of the ``tiny`` space measured on ``cpu`` (1 thread, seq 128, batch 1, quick timing)."""
    return PROFILE


@pytest.fixture(scope="session")
def measurements(profile_path):
    from hwnas.predictors.training import load_measurements

    return load_measurements(profile_path)


@pytest.fixture(scope="session")
def fitted(measurements):
    """A predictor fitted with fixed hyper-parameters (fast)."""
    from hwnas.predictors.training import fit_predictor

    return fit_predictor(measurements, tune_hyperparameters=False, params={"n_estimators": 20, "max_depth": 2}, n_folds=3)


@pytest.fixture
def bundle(fitted, tmp_path):
    from hwnas.predictors.bundle import save_bundle

    return save_bundle(fitted, tmp_path / "cpu.hwnas")


@pytest.fixture(scope="session")
def synthetic():
    """A known latency law on every architecture of ``tiny`` and ``small`` at two shapes.

    ``latency_ms = 0.2 + 0.05 * layers + 1.5e-8 * total_flops``, times 2% seeded
    log-normal noise: estimators must learn it, which a real profile on a shared
    2-core machine cannot promise. Returns ``Measurements``.
    """
    import numpy as np

    from hwnas.predictors.features import featurize, input_array
    from hwnas.predictors.training import Measurements
    from hwnas.space import get_space

    archs = get_space("tiny").enumerate() + get_space("small").sample(60, seed=0)
    x = np.vstack([input_array(archs, seq_len=s) for s in (64, 128)]).astype(float)
    flops = featurize(x, ["total_flops"])[:, 0]
    rng = np.random.default_rng(0)
    y = (0.2 + 0.05 * x[:, 0] + 1.5e-8 * flops) * np.exp(rng.normal(0, 0.02, len(x)))
    return Measurements(x, y, device={"name": "synthetic"}, space=None, source="synthetic")
