"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hwnas.errors import InvalidData
from hwnas.predictors.metrics import evaluate, extrapolation_split, kendall_tau, mape, rmse, spearman_rho, within


def test_hand_computed_accuracy():
    y = [100.0, 200.0, 300.0, 400.0]
    p = [105.0, 180.0, 330.0, 400.0]  # errors +5%, -10%, +10%, 0%
    assert within(y, p, 0.05) == 0.5  # an error of exactly 5% counts as within
    assert within(y, p, 0.10) == 1.0
    assert within(y, p, 0.04) == 0.25
    assert mape(y, p) == pytest.approx((0.05 + 0.10 + 0.10 + 0.0) / 4)
    assert rmse(y, p) == pytest.approx(math.sqrt((25 + 400 + 900 + 0) / 4))


def test_hand_computed_rank_correlations():
    y = [1.0, 2.0, 3.0, 4.0]
    p = [2.0, 1.0, 3.0, 4.0]  # one discordant pair out of six
    assert kendall_tau(y, p) == pytest.approx((5 - 1) / 6)
    assert spearman_rho(y, p) == pytest.approx(1 - 6 * 2 / (4 * (16 - 1)))
    assert kendall_tau(y, y) == pytest.approx(1.0)
    assert spearman_rho(y, y[::-1]) == pytest.approx(-1.0)


def test_evaluate_has_every_metric():
    m = evaluate([1.0, 2.0, 4.0], [1.0, 2.2, 3.0])
    assert m["n"] == 3
    assert m["within_10"] == pytest.approx(2 / 3)
    assert m["mape"] == pytest.approx((0 + 0.1 + 0.25) / 3)
    assert set(m) == {"n", "within_5", "within_10", "mape", "rmse_ms", "kendall_tau", "spearman_rho"}


def test_bad_inputs_are_refused():
    with pytest.raises(InvalidData, match="same length"):
        mape([1.0, 2.0], [1.0])
    with pytest.raises(InvalidData, match="positive"):
        mape([0.0, 2.0], [1.0, 2.0])
    with pytest.raises(InvalidData, match="zero samples"):
        rmse([], [])
    with pytest.raises(InvalidData, match="finite"):
        within([1.0, float("nan")], [1.0, 1.0], 0.1)


def test_extrapolation_split_holds_out_the_deepest_and_widest():
    x = np.array([[2, 128], [4, 128], [2, 256], [3, 192], [4, 256]])
    train, test = extrapolation_split(x, (0, 1))
    assert list(test) == [False, True, True, False, True]
    assert x[train, 0].max() < x[test, 0].max() or x[train, 1].max() < x[test, 1].max()
    assert np.all((x[train, 0] < 4) & (x[train, 1] < 256))
    with pytest.raises(InvalidData, match="single value"):
        extrapolation_split(np.array([[2, 1], [2, 2]]), (0,), names=["layers", "x"])
