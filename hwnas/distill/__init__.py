"""Distillation of searched students and their export.

``hwnas.distill.data`` reads tasks, ``losses`` holds the named loss
components, ``trainer`` the resumable training loop, ``teacher`` the cached
task teacher, ``models`` student initialisation, ``export`` the Hugging Face /
ONNX export with verification, and ``api.distill`` ties them together.
Names are imported lazily so that ``import hwnas.distill`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hwnas.distill' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
