"""Random search: the baseline every benchmark compares against."""

from __future__ import annotations

from hwnas.search.base import Strategy, register_strategy

__all__ = ["RandomSearch"]


@register_strategy
class RandomSearch(Strategy):
    """Feasible architectures drawn uniformly without replacement.

    Args:
        seed: seeds the draws.
    """

    name = "random"

    def _propose(self, n: int) -> list[int]:
        return self._random_available(n)
