"""MiniLM's self-attention relation loss, shared by supernet training and distillation.

A relation of a ``batch x seq x width`` tensor ``x`` (queries, keys, values or
hidden states) splits ``x`` into ``R`` relation heads of width ``width / R`` and
takes ``softmax(x_r x_r^T / sqrt(width / R))`` over the keys. Teacher and student
relations have the same shape whatever their widths, so their KL divergence
needs no projection (Wang et al., MiniLMv2, 2021).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from hwnas.errors import InvalidConfig

__all__ = ["relation_log_probs", "relation_kl", "relation_heads"]


def relation_log_probs(x: torch.Tensor, heads: int, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Log relation matrices: ``batch x R x seq x seq`` log-probabilities over the keys (padding keys get 0).

    Args:
        x: ``batch x seq x width``; ``heads`` must divide ``width``.
        heads: number of relation heads ``R``.
        attention_mask: ``batch x seq`` (1 = token, 0 = padding) or ``None``.
    """
    bsz, seq, width = x.shape
    if width % heads:
        raise ValueError(f"relation heads ({heads}) must divide the width ({width})")
    d = width // heads
    xr = x.view(bsz, seq, heads, d).transpose(1, 2)
    scores = torch.matmul(xr, xr.transpose(-1, -2)) / math.sqrt(d)
    if attention_mask is not None:
        pad = ~attention_mask[:, None, None, :].to(torch.bool)
        scores = scores.masked_fill(pad, torch.finfo(scores.dtype).min)
    return F.log_softmax(scores, dim=-1)


def relation_kl(teacher_logp: torch.Tensor, student_logp: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """KL(teacher || student) per query, averaged over real queries, heads and batch (a scalar)."""
    p = teacher_logp.exp()
    kl = (p * (teacher_logp - student_logp)).sum(-1)  # batch x R x seq
    if attention_mask is None:
        return kl.mean()
    m = attention_mask[:, None, :].to(kl.dtype).expand_as(kl)
    return (kl * m).sum() / m.sum().clamp_min(1.0)


def relation_heads(widths: Iterable[int], *, cap: int = 12, requested: int | None = None) -> int:
    """The number of relation heads ``R``: ``requested`` if it divides every width, else the largest
    ``R <= cap`` that does (``cap``: the teacher's head count; 12 when unknown)."""
    widths = [int(w) for w in widths]
    if requested is not None:
        bad = [w for w in widths if w % requested]
        if bad:
            raise InvalidConfig(f"relation_heads must divide every hidden size; relation_heads={requested} does not divide {bad}")
        return requested
    g = 0
    for w in widths:
        g = math.gcd(g, w)
    return max(r for r in range(1, max(1, cap) + 1) if g % r == 0)
