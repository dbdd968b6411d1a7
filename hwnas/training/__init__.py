"""The one training stack supernet training and distillation share.

* :mod:`~hwnas.training.loop`: :class:`TrainLoop`, the skeleton (resume, steps, checkpoints,
  progress events) with hooks for what a run computes;
* :mod:`~hwnas.training.checkpoint`: the one checkpoint format (safetensors + JSON) and its
  atomic, fsynced writer;
* :mod:`~hwnas.training.processes`: ``accelerate`` for several processes, a stand-in for one;
* :mod:`~hwnas.training.teacher`: the one teacher resolver (``default``, a folder, a hub name);
* :mod:`~hwnas.training.schedule` and :mod:`~hwnas.training.relations`: the learning-rate
  schedule, the seeded batch order, the MiniLM relation loss and its one rule for the number
  of relation heads.

A fix made here reaches both loops.
"""

from hwnas.training.loop import TrainLoop
from hwnas.training.relations import relation_heads, relation_kl, relation_log_probs
from hwnas.training.schedule import epoch_batch, linear_warmup_decay
from hwnas.training.teacher import resolve_teacher, teacher_name

__all__ = ["TrainLoop", "relation_heads", "relation_kl", "relation_log_probs", "epoch_batch", "linear_warmup_decay",
           "resolve_teacher", "teacher_name"]
