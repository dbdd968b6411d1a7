"""Distillation of searched students and their export.

``hwnas.distill.data`` reads tasks, ``losses`` holds the named loss
components, ``trainer`` the resumable training loop, ``teacher`` the cached
task teacher, ``models`` student initialisation, ``export`` the Hugging Face /
ONNX export with verification, and ``api.distill`` ties them together.
Names are imported lazily so that ``import hwnas.distill`` stays cheap.
"""

from __future__ import annotations

from hwnas._lazy import lazy_getattr

_LAZY = {
    "DistillConfig": "hwnas.distill.api",
    "distill": "hwnas.distill.api",
    "load_task": "hwnas.distill.data",
    "TaskData": "hwnas.distill.data",
    "LossConfig": "hwnas.distill.losses",
    "LOSSES": "hwnas.distill.losses",
    "TrainConfig": "hwnas.distill.trainer",
    "train": "hwnas.distill.trainer",
    "finetune_teacher": "hwnas.distill.teacher",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
