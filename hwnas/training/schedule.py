"""The learning-rate schedule and the batch order every hwnas training loop uses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["linear_warmup_decay", "epoch_batch"]


def linear_warmup_decay(step: int, *, peak: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of 0-based ``step``: linear warm-up to ``peak`` over ``warmup_steps``, then linear decay to 0
    at ``total_steps``."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def epoch_batch(n: int, batch_size: int, step: int, seed: int, salt: Sequence[int] = ()) -> np.ndarray:
    """Example indices of global batch ``step``: consecutive slices of one seeded permutation of ``range(n)`` per epoch.

    The order depends only on ``(seed, *salt, epoch)``, so a resumed run sees exactly the batches an uninterrupted
    one would. ``salt`` keeps the orders of different loops apart (the supernet's loop uses ``(11,)``).
    """
    start = step * batch_size
    out: list[int] = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n)
        perm = np.random.default_rng([seed, epoch, *salt]).permutation(n)
        out.extend(perm[offset : offset + batch_size - len(out)].tolist())
    return np.asarray(out, dtype=np.int64)
