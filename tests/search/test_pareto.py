"""Pareto masks, NSGA-II sorting and hypervolume on hand-checked examples."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.search.pareto import (
    crowding_distance,
    hypervolume,
    hypervolume_2d,
    non_dominated,
    non_dominated_ranks,
    nsga2_order,
    pareto_mask,
)


def test_pareto_mask_keeps_the_accuracy_latency_front():
    scores = [0.5, 0.7, 0.6, 0.9, 0.4]
    latencies = [1.0, 2.0, 3.0, 4.0, 1.5]  # 0.6 at 3 ms is beaten by 0.7 at 2 ms; 0.4 at 1.5 ms by 0.5 at 1 ms
    assert pareto_mask(scores, latencies).tolist() == [True, True, False, True, False]


def test_duplicates_are_kept_once_unless_asked():
    y = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    assert non_dominated(y).tolist() == [True, False, False]
    assert non_dominated(y, deduplicate=False).tolist() == [True, True, False]


def test_ranks_peel_fronts():
    y = np.array([[3, 1], [1, 3], [2, 2], [1, 1], [0, 0], [2, 0.5]], dtype=float)
    assert non_dominated_ranks(y).tolist() == [0, 0, 0, 1, 2, 1]


def test_crowding_distance_favours_boundaries_and_gaps():
    y = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(y)
    assert np.isinf(d[0]) and np.isinf(d[3])
    # interior points: (3 - 0) / 4 + (4 - 1) / 4 = 1.5 for both
    assert d[1] == pytest.approx(1.5) and d[2] == pytest.approx(1.5)


def test_nsga2_order_ranks_then_crowding():
    y = np.array([[1.0, 1.0], [0.0, 4.0], [4.0, 0.0], [2.0, 2.5], [0.5, 0.5]])
    order = nsga2_order(y).tolist()
    assert set(order[:3]) == {1, 2, 3} and order[3:] == [0, 4]
    assert order.index(3) == 2  # the interior point of the first front comes after its boundaries


def test_hypervolume_of_rectangles():
    # Points (score, -latency) against reference (0, -10): a staircase of two boxes.
    y = np.array([[2.0, -4.0], [1.0, -2.0]])
    # box 1: score 0..2, latency 4..10 -> 2 * 6 = 12; box 2 adds score 0..1, latency 2..4 -> 1 * 2 = 2
    assert hypervolume(y, [0.0, -10.0]) == pytest.approx(14.0)
    assert hypervolume_2d([2.0, 1.0], [4.0, 2.0], ref_score=0.0, ref_latency_ms=10.0) == pytest.approx(14.0)


def test_points_beyond_the_reference_add_nothing():
    assert hypervolume_2d([2.0, 5.0], [4.0, 12.0], ref_score=0.0, ref_latency_ms=10.0) == pytest.approx(12.0)
    assert hypervolume_2d([-1.0], [1.0], ref_score=0.0, ref_latency_ms=10.0) == 0.0
    assert hypervolume(np.array([[3.0]]), [1.0]) == pytest.approx(2.0)


def test_hypervolume_checks_the_reference_shape():
    with pytest.raises(ValueError, match="one value per objective"):
        hypervolume(np.ones((2, 2)), [0.0])
