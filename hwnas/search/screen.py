"""Two fidelities: a cheap estimator screens the feasible set, the search's estimator decides.

:class:`ScreenThenDecide` scores *every* feasible architecture with a cheap
screening estimator (parameter count, FLOPs, a zero-cost proxy, the supernet's
loss), then proposes them to the search loop in screening order, so that the
expensive estimator the loop evaluates with (a few-step task proxy, say) is spent
on the candidates the screen likes best. To keep the Pareto front covered, the
feasible set is cut into ``bands`` groups of equal size by predicted latency, and
the proposals go round the bands, slowest first (where the most accurate
students under the budget usually are), taking each band's next best.

Use it from the CLI with ``hwnas search --screen params --estimator task-proxy``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, check_int
from hwnas.search.base import Strategy, register_strategy

__all__ = ["ScreenThenDecide"]


@register_strategy
class ScreenThenDecide(Strategy):
    """Propose feasible architectures best-screened first, round-robin over latency bands.

    Args:
        screen: an accuracy estimator (anything with ``score(archs)``, higher is
            better) or a registered estimator name that needs nothing else
            (``params``, ``flops``).
        bands: number of latency bands (1: pure screening order).
        seed: breaks ties between equal screening scores.
    """

    name = "screen"

    def __init__(self, *, screen: Any = "params", bands: int = 4, seed: int | None = 0) -> None:
        super().__init__(seed=seed)
        check_int("bands", bands)
        if isinstance(screen, str):
            from hwnas.estimators import make_estimator

            screen = make_estimator(screen)
        if not (hasattr(screen, "score") and callable(screen.score)):
            raise InvalidConfig(f"screen must be an accuracy estimator or its name; got {type(screen).__name__}")
        self.screen = screen
        self.bands = int(bands)
        self.screen_scores: np.ndarray | None = None

    def options(self) -> dict[str, Any]:
        return {"seed": self.seed, "screen": getattr(self.screen, "name", type(self.screen).__name__), "bands": self.bands}

    def _setup(self) -> None:
        p = self.problem
        feasible = np.flatnonzero(p.feasible)
        scores = np.asarray(self.screen.score([p.candidates[i] for i in feasible]), dtype=np.float64)
        full = np.full(len(p), -np.inf)
        full[feasible] = scores
        self.screen_scores = full
        by_latency = feasible[np.argsort(-p.latency_ms[feasible], kind="stable")]  # slowest first
        jitter = self.rng.random(len(p)) * 1e-12  # seeded tie-break
        queues = []
        for band in np.array_split(by_latency, min(self.bands, len(by_latency))):
            order = np.lexsort((jitter[band], -full[band]))
            queues.append(list(band[order]))
        self._order: list[int] = []
        while any(queues):
            for q in queues:
                if q:
                    self._order.append(int(q.pop(0)))

    def _propose(self, n: int) -> list[int]:
        available = set(self.available.tolist())
        return [i for i in self._order if i in available][:n]
