"""Weight-sharing supernets: elastic BERT, task-agnostic training, accuracy estimates.

``load_supernet(folder)`` gives a :class:`Supernet` whose ``extract(arch)`` is a
standalone ``transformers.BertModel``; ``hwnas.supernet.estimate`` scores
architectures with it. Names are imported lazily so that importing this package
does not load torch.
"""

from __future__ import annotations

from hwnas._lazy import lazy_getattr

_LAZY = {
    "load_supernet": "hwnas.supernet.supernet", "Supernet": "hwnas.supernet.supernet",
    "ElasticBert": "hwnas.supernet.elastic", "TrainConfig": "hwnas.supernet.train",
    "TrainResult": "hwnas.supernet.train", "train_supernet": "hwnas.supernet.train",
    "SupernetEstimator": "hwnas.supernet.estimate", "load_teacher": "hwnas.supernet.teacher",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
