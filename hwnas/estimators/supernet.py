"""The supernet's own scores behind the estimator protocol (see :mod:`hwnas.supernet.estimate`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig
from hwnas.estimators.base import ESTIMATORS, AccuracyEstimator
from hwnas.space import Architecture

__all__ = ["SupernetLoss", "SupernetProbe"]


class _SupernetScore(AccuracyEstimator):
    metric = "loss"
    requires = frozenset({"supernet"})

    def __init__(self, *, supernet: Any, threads: int | None = None, **options: Any) -> None:
        super().__init__()
        from hwnas.supernet.estimate import SupernetEstimator

        if supernet is None:
            raise InvalidConfig(f"estimator {self.name!r} needs a supernet")
        allowed = {"batch_size", "heldout_rows", "proxy_train", "proxy_eval", "proxy_train_rows", "proxy_eval_rows",
                   "proxy_seq_len", "cache"}
        self.inner = SupernetEstimator(supernet, metric=self.metric, threads=threads,
                                       **{k: v for k, v in options.items() if k in allowed})
        self.supernet = self.inner.supernet
        self.label = self.inner.name  # e.g. supernet-loss:small@150 (the steps guard a resumed search)

    def validate(self, arch: Architecture) -> Architecture:
        return self.supernet.validate(arch)

    def check_space(self, space) -> None:
        for a in (space.largest, space.smallest):
            self.validate(a)

    def _score(self, archs: list[Architecture]) -> np.ndarray:
        return self.inner.score(archs)


@ESTIMATORS.register("supernet-loss")
class SupernetLoss(_SupernetScore):
    name = "supernet-loss"
    metric = "loss"
    description = "minus the sub-network's held-out distillation loss in the supernet; ~0.1-1 s"


@ESTIMATORS.register("supernet-probe")
class SupernetProbe(_SupernetScore):
    name = "supernet-probe"
    metric = "proxy"
    description = "linear-probe accuracy of the sub-network's pooled features (SST-2 sample by default); ~1-5 s"
