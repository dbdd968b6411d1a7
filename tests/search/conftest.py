"""Fixtures of the search tests.

The strategy tests run on a synthetic problem (analytic latency, a smooth
made-up score) because its whole front is known exactly; the CLI and
verification tests use real artefacts: a predictor fitted on the committed
tiny CPU profile, and a supernet trained for two steps on the embedded data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwnas.search.problem import SearchProblem
from hwnas.search.synthetic import SyntheticEstimator, SyntheticLatency

PROFILE = Path(__file__).resolve().parents[1] / "predictors" / "data" / "cpu-tiny.jsonl"


def synthetic_problem(space: str = "tiny", quantile: float = 0.5, **kwargs) -> SearchProblem:
    """The synthetic problem with the budget at a quantile of the space's upper bounds."""
    latency = SyntheticLatency()
    probe = SearchProblem(space=space, latency=latency, budget_ms=1e9)
    budget = float(np.quantile(probe.latency_upper_ms, quantile))
    return SearchProblem(space=space, latency=latency, budget_ms=budget, **kwargs)


@pytest.fixture
def problem() -> SearchProblem:
    return synthetic_problem()


@pytest.fixture
def estimator() -> SyntheticEstimator:
    return SyntheticEstimator()


@pytest.fixture(scope="session")
def real_predictor_path(tmp_path_factory) -> Path:
    """A real predictor bundle fitted on the committed tiny CPU profile (space tiny)."""
    from hwnas.predictors.bundle import save_bundle
    from hwnas.predictors.training import fit_predictor, load_measurements

    fitted = fit_predictor(load_measurements(PROFILE), tune_hyperparameters=False,
                           params={"n_estimators": 20, "max_depth": 2}, n_folds=3)
    return save_bundle(fitted, tmp_path_factory.mktemp("predictor") / "cpu-tiny.hwnas")


@pytest.fixture(scope="session")
def other_space_predictor_path(tmp_path_factory) -> Path:
    """The same real fit, labelled as a predictor of space ``small`` (for the mismatch error)."""
    from hwnas.predictors.bundle import save_bundle
    from hwnas.predictors.training import fit_predictor, load_measurements

    fitted = fit_predictor(load_measurements(PROFILE), tune_hyperparameters=False,
                           params={"n_estimators": 5, "max_depth": 2}, n_folds=3)
    fitted.manifest["space"] = "small"
    return save_bundle(fitted, tmp_path_factory.mktemp("predictor-small") / "cpu-small.hwnas")


@pytest.fixture(scope="session")
def tiny_supernet_path(tmp_path_factory) -> Path:
    """A real supernet of space ``tiny`` trained for two steps on a few embedded sentences."""
    from hwnas.supernet.train import TrainConfig, train_supernet

    out = tmp_path_factory.mktemp("supernet") / "tiny"
    cfg = TrainConfig(space="tiny", out=str(out), steps=2, batch_size=4, seq_len=16, max_rows=48, heldout=8,
                      checkpoint_every=2, threads=1, random_subnets=1)
    train_supernet(cfg)
    return out
