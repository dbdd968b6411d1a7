"""A cheap synthetic search problem with a known front, for tests and for developing benchmarks.

Nothing here is a measurement: the latency is an analytic cost model and the
score a smooth made-up function of the architecture. Both are cheap enough to
enumerate a whole space, so the true Pareto front and its hypervolume are
known exactly, which is what a strategy's tests and benchmarks need.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hwnas.space import Architecture

__all__ = ["SyntheticLatency", "SyntheticEstimator", "as_array"]


def as_array(archs: Sequence[Architecture] | np.ndarray) -> np.ndarray:
    """``n x 4`` int array (layers, hidden, heads, ffn) from architectures or an array."""
    if isinstance(archs, np.ndarray):
        out = np.asarray(archs, dtype=np.int64)
    else:
        out = np.array([a.as_tuple() for a in archs], dtype=np.int64).reshape(-1, 4)
    if out.ndim != 2 or out.shape[1] != 4:
        raise ValueError(f"architectures must be an n x 4 array; got shape {out.shape}")
    return out


class SyntheticLatency:
    """Analytic latency in milliseconds: multiply-adds of the encoder at a fixed throughput, plus overheads.

    Args:
        gflops_per_ms: throughput, in 10^9 multiply-adds per millisecond.
        overhead_ms: fixed cost of a call.
        per_layer_ms: fixed cost per layer (kernel launches, norms).
        upper_margin: ``predict_upper`` is ``predict * (1 + upper_margin)``.

    It has the attributes of a predictor bundle the search reads
    (``device``, ``space``, ``manifest``), so it can stand in for one.
    """

    def __init__(
        self, *, gflops_per_ms: float = 0.05, overhead_ms: float = 0.2, per_layer_ms: float = 0.05,
        upper_margin: float = 0.1,
    ) -> None:
        self.gflops_per_ms = gflops_per_ms
        self.overhead_ms = overhead_ms
        self.per_layer_ms = per_layer_ms
        self.upper_margin = upper_margin
        self.device = "synthetic"
        self.space = None
        self.manifest: dict[str, Any] = {"device": "synthetic", "coverage": 0.95, "kind": "analytic"}

    def predict(self, archs: Any, *, seq_len: int = 128, batch_size: int = 1) -> np.ndarray:
        a = as_array(archs).astype(np.float64)
        layers, hidden, _heads, ffn = a.T
        tokens = seq_len * batch_size
        per_layer = tokens * (4 * hidden * hidden + 2 * hidden * ffn) + 2 * batch_size * seq_len * seq_len * hidden
        return self.overhead_ms + layers * (self.per_layer_ms + per_layer / (self.gflops_per_ms * 1e9))

    def predict_upper(self, archs: Any, *, seq_len: int = 128, batch_size: int = 1) -> np.ndarray:
        return self.predict(archs, seq_len=seq_len, batch_size=batch_size) * (1.0 + self.upper_margin)

    def check_device(self, name: str, override: bool = False) -> None:
        from hwnas.errors import PredictorMismatch

        if name != self.device and not override:
            raise PredictorMismatch(f"synthetic latency model is for device {self.device!r}, not {name!r}")


class SyntheticEstimator:
    """A smooth accuracy-like score (higher is better) with diminishing returns and interactions.

    Deeper and wider is better but saturates; an FFN far from four times the
    hidden size and heads far from 64-wide are penalised, so the best
    architecture under a budget is not simply the largest feasible one.
    ``noise`` adds a fixed, seeded perturbation per architecture (the same
    architecture always gets the same score).

    Attributes:
        calls: number of architectures scored so far (the evaluation count).
    """

    def __init__(self, *, noise: float = 0.0, seed: int = 0) -> None:
        self.noise = float(noise)
        self.seed = int(seed)
        self.name = "synthetic"
        self.calls = 0

    def score(self, archs: Sequence[Architecture] | np.ndarray) -> np.ndarray:
        a = as_array(archs).astype(np.float64)
        self.calls += len(a)
        layers, hidden, heads, ffn = a.T
        value = (
            0.9 * np.log(layers)
            + 1.2 * np.log(hidden / 128.0)
            + 0.4 * np.log(ffn / 256.0)
            - 0.35 * (np.log(ffn / hidden) - np.log(4.0)) ** 2
            - 0.08 * np.log(hidden / heads / 64.0) ** 2
            - 0.03 * layers * (hidden < 256)
        )
        if self.noise:
            keys = a.astype(np.int64)
            jitter = np.array(
                [np.random.default_rng([self.seed, *row]).normal() for row in keys.tolist()], dtype=np.float64
            )
            value = value + self.noise * jitter
        return value
