"""What supernet training and distillation share: the learning-rate schedule, the
seeded batch order and the MiniLM relation loss with its one rule for the number
of relation heads. Both training loops import these; a fix made here reaches both.
"""

from hwnas.training.relations import relation_heads, relation_kl, relation_log_probs
from hwnas.training.schedule import epoch_batch, linear_warmup_decay

__all__ = ["relation_heads", "relation_kl", "relation_log_probs", "epoch_batch", "linear_warmup_decay"]
