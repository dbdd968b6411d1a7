"""Pareto utilities: non-dominated masks, NSGA-II sorting and hypervolume.

Conventions: every objective array is ``n x m`` and **maximised** (turn a
latency into ``-latency_ms`` first). The two-objective helpers that take
``scores`` and ``latencies_ms`` do that conversion themselves: accuracy
estimates are maximised, latencies minimised.

The dominance test and the hypervolume are BoTorch's
(:func:`botorch.utils.multi_objective.is_non_dominated`,
:class:`botorch.utils.multi_objective.box_decompositions.dominated.DominatedPartitioning`);
the ranks and crowding distances of NSGA-II (Deb et al., 2002) are built on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "non_dominated", "pareto_mask", "non_dominated_ranks", "crowding_distance", "nsga2_order", "hypervolume",
    "hypervolume_2d",
]


def _as_matrix(objectives: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    y = np.asarray(objectives, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"objectives must be an n x m array; got shape {y.shape}")
    return y


def non_dominated(objectives: np.ndarray, *, deduplicate: bool = True) -> np.ndarray:
    """Boolean mask (length ``n``) of the rows of ``objectives`` (``n x m``, maximised) no other row dominates.

    With ``deduplicate`` only the first of identical rows is marked.
    """
    import torch
    from botorch.utils.multi_objective import is_non_dominated

    y = _as_matrix(objectives)
    if len(y) == 0:
        return np.zeros(0, dtype=bool)
    mask = is_non_dominated(torch.from_numpy(y), maximize=True, deduplicate=deduplicate)
    return mask.numpy().astype(bool)


def pareto_mask(scores: Sequence[float], latencies_ms: Sequence[float], *, deduplicate: bool = True) -> np.ndarray:
    """Mask of the architectures on the accuracy/latency front (score maximised, latency in ms minimised)."""
    s = np.asarray(scores, dtype=np.float64)
    lat = np.asarray(latencies_ms, dtype=np.float64)
    if s.shape != lat.shape or s.ndim != 1:
        raise ValueError(f"scores and latencies_ms must be 1-D of the same length; got {s.shape} and {lat.shape}")
    return non_dominated(np.stack([s, -lat], axis=1), deduplicate=deduplicate)


def non_dominated_ranks(objectives: np.ndarray) -> np.ndarray:
    """NSGA-II front index of each row (0: non-dominated, 1: non-dominated once front 0 is removed, ...).

    Args:
        objectives: ``n x m`` array, maximised.

    Returns:
        ``n`` integers. Identical rows share a rank.
    """
    y = _as_matrix(objectives)
    ranks = np.full(len(y), -1, dtype=np.int64)
    remaining = np.arange(len(y))
    rank = 0
    while len(remaining):
        mask = non_dominated(y[remaining], deduplicate=False)
        ranks[remaining[mask]] = rank
        remaining = remaining[~mask]
        rank += 1
    return ranks


def crowding_distance(objectives: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row within one front (``n x m``, maximised).

    Boundary points of every objective get ``inf``; the others the sum over
    objectives of the normalised gap between their two neighbours.
    """
    y = _as_matrix(objectives)
    n, m = y.shape
    distance = np.zeros(n, dtype=np.float64)
    if n <= 2:
        distance[:] = np.inf
        return distance
    for j in range(m):
        order = np.argsort(y[:, j], kind="stable")
        span = y[order[-1], j] - y[order[0], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span <= 0:
            continue
        gaps = (y[order[2:], j] - y[order[:-2], j]) / span
        distance[order[1:-1]] += gaps
    return distance


def nsga2_order(objectives: np.ndarray) -> np.ndarray:
    """Indices of the rows from best to worst: by front rank, then by crowding distance (largest first)."""
    y = _as_matrix(objectives)
    ranks = non_dominated_ranks(y)
    crowd = np.zeros(len(y))
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        crowd[members] = crowding_distance(y[members])
    # lexsort sorts by the last key first: rank ascending, then crowding descending, then index.
    return np.lexsort((np.arange(len(y)), -crowd, ranks))


def hypervolume(objectives: np.ndarray, reference: Sequence[float]) -> float:
    """Volume dominated by ``objectives`` (``n x m``, maximised) and bounded below by ``reference`` (length ``m``).

    Points that do not strictly dominate the reference contribute nothing.
    """
    import torch
    from botorch.utils.multi_objective.box_decompositions.dominated import DominatedPartitioning

    y = _as_matrix(objectives)
    ref = np.asarray(reference, dtype=np.float64)
    if ref.shape != (y.shape[1],):
        raise ValueError(f"reference must have one value per objective ({y.shape[1]}); got shape {ref.shape}")
    y = y[np.all(y > ref, axis=1)]
    if len(y) == 0:
        return 0.0
    if y.shape[1] == 1:
        return float(y.max() - ref[0])
    partitioning = DominatedPartitioning(ref_point=torch.from_numpy(ref), Y=torch.from_numpy(y))
    return float(partitioning.compute_hypervolume().item())


def hypervolume_2d(
    scores: Sequence[float], latencies_ms: Sequence[float], *, ref_score: float, ref_latency_ms: float
) -> float:
    """Hypervolume of accuracy/latency points (score maximised, latency minimised) against ``(ref_score, ref_latency_ms)``.

    Units: score units times milliseconds.
    """
    s = np.asarray(scores, dtype=np.float64)
    lat = np.asarray(latencies_ms, dtype=np.float64)
    return hypervolume(np.stack([s, -lat], axis=1).reshape(-1, 2), [ref_score, -ref_latency_ms])
