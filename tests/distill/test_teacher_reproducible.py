"""A fine-tuned teacher is a function of its cache key: the same base, data and settings give the same weights
whatever the process did before (real fine-tuning of a tiny teacher)."""

from __future__ import annotations

import hashlib

import torch

from hwnas.data import embedded_path
from hwnas.distill.data import load_task
from hwnas.distill.teacher import finetune_teacher
from hwnas.distill.trainer import TrainConfig


def _sha(folder) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_the_same_key_gives_the_same_teacher_whatever_random_numbers_were_drawn_before(tiny_teacher, tmp_path):
    data = load_task(embedded_path("sst2/train.tsv"))
    train = data.head(48)
    config = TrainConfig(steps=3, batch_size=8, lr=1e-4, max_len=24, seed=0, checkpoint_every=100)
    first = finetune_teacher(tiny_teacher, train, None, config, tmp_path / "a", max_len=24)
    torch.rand(1000)  # a process that drew other random numbers first (a student built, a dataset shuffled...)
    second = finetune_teacher(tiny_teacher, train, None, config, tmp_path / "b", max_len=24)
    assert first.path.name == second.path.name  # the same cache key
    assert _sha(first.path) == _sha(second.path)
