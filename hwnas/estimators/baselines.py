"""The baselines every estimator must beat: counting parameters and FLOPs."""

from __future__ import annotations

import numpy as np

from hwnas.errors import check_int
from hwnas.estimators.base import ESTIMATORS, AccuracyEstimator
from hwnas.space import Architecture

__all__ = ["ParamCount", "Flops", "encoder_flops"]


def encoder_flops(arch: Architecture, seq_len: int = 128) -> float:
    """Floating-point operations of one forward pass of ``arch`` on one sequence of ``seq_len`` tokens.

    Matrix products only (2 FLOPs per multiply-add): the Q/K/V/output projections
    (``8 S H^2``), the FFN (``4 S H F``) and the attention scores and context
    (``4 S^2 H``), per layer; embeddings, softmax and layer norms are ignored.
    """
    s, h, f = seq_len, arch.hidden, arch.ffn
    return float(arch.layers * (8 * s * h * h + 4 * s * h * f + 4 * s * s * h))


@ESTIMATORS.register("params")
class ParamCount(AccuracyEstimator):
    """The parameter count of the encoder, embeddings included (what people count)."""

    name = "params"
    description = "parameter count of the encoder (embeddings included); free"

    def _score(self, archs: list[Architecture]) -> np.ndarray:
        return np.array([a.num_parameters() for a in archs], dtype=np.float64)


@ESTIMATORS.register("flops")
class Flops(AccuracyEstimator):
    """Matrix-product FLOPs of one forward pass at ``seq_len`` tokens (:func:`encoder_flops`)."""

    name = "flops"
    description = "forward FLOPs at 128 tokens (matrix products); free"

    def __init__(self, *, seq_len: int = 128) -> None:
        super().__init__()
        check_int("seq_len", seq_len)
        self.seq_len = seq_len

    def _score(self, archs: list[Architecture]) -> np.ndarray:
        return np.array([encoder_flops(a, self.seq_len) for a in archs], dtype=np.float64)
