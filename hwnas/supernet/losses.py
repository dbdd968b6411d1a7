"""MiniLM-v2 multi-head self-attention relation distillation.

For a set of vectors ``X`` (queries, keys or values of one layer, ``batch x seq x
width``), split the width into ``R`` *relation heads* and form, per head, the
scaled dot-product relation ``softmax(X_r X_r^T / sqrt(width / R))`` over the
sequence (``batch x R x seq x seq``). Teacher and student relations have the
same shape whatever their widths or attention-head counts, so any student can
match any teacher as long as ``R`` divides both widths (Wang et al., MiniLMv2,
2021). The loss is the KL divergence from the teacher's relation to the
student's, summed over keys and averaged over real (non-padding) queries,
relation heads and the batch, then summed over the query-query, key-key and
value-value relations.

An optional hidden-state term does the same with the last hidden states.
"""

from __future__ import annotations

import torch

from hwnas.training.relations import relation_kl, relation_log_probs

__all__ = ["relation_log_probs", "relation_kl", "TeacherTargets", "distillation_loss"]


class TeacherTargets:
    """The teacher's relations for one batch, computed once and reused by every sub-network.

    Args:
        qkv: the teacher layer's query, key and value (each ``batch x seq x width``).
        attention_mask: ``batch x seq``.
        relation_heads: ``R``.
        hidden: the teacher's last hidden state (``batch x seq x width``) when the
            hidden-state term is used, else ``None``.
    """

    def __init__(self, qkv, attention_mask, relation_heads: int, hidden: torch.Tensor | None = None) -> None:
        self.attention_mask = attention_mask
        self.relation_heads = relation_heads
        with torch.no_grad():
            self.logp = [relation_log_probs(t, relation_heads, attention_mask) for t in qkv]
            self.hidden_logp = relation_log_probs(hidden, relation_heads, attention_mask) if hidden is not None else None


def distillation_loss(targets: TeacherTargets, student_qkv, student_hidden=None, *, hidden_weight: float = 0.0) -> torch.Tensor:
    """Sum of the Q-Q, K-K and V-V relation KLs (plus ``hidden_weight`` x the hidden-state relation KL)."""
    mask, r = targets.attention_mask, targets.relation_heads
    loss = sum(relation_kl(t, relation_log_probs(s, r, mask), mask) for t, s in zip(targets.logp, student_qkv, strict=True))
    if hidden_weight and targets.hidden_logp is not None and student_hidden is not None:
        loss = loss + hidden_weight * relation_kl(targets.hidden_logp, relation_log_probs(student_hidden, r, mask), mask)
    return loss

