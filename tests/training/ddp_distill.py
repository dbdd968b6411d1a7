"""One short distillation, run by ``test_distributed.py`` under torchrun (two processes) and in-process (one).

Every example fills the sequence and dropout is off, so that the mean loss over two
half-batches equals the mean over the whole batch and the two runs must agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from hwnas.distill.losses import LossConfig
from hwnas.distill.trainer import TrainConfig, train
from hwnas.space import Architecture
from hwnas.training.checkpoint import save_weights
from hwnas.training.processes import process_state

CONFIG = TrainConfig(steps=4, batch_size=8, lr=3e-3, warmup=0.0, checkpoint_every=2, seed=0)
LOSSES = LossConfig(weights={"logits": 1.0, "hidden": 1.0})


def _model(arch: Architecture, seed: int):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = arch.to_bert_config(vocab_size=50, max_position_embeddings=16, num_labels=2, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(cfg)


def run(out: Path) -> list[dict]:
    """Distil a 1-layer student from a 2-layer teacher; returns the main process's progress events."""
    g = torch.Generator().manual_seed(1)
    enc = {"input_ids": torch.randint(5, 50, (16, 8), generator=g), "attention_mask": torch.ones(16, 8, dtype=torch.long),
           "token_type_ids": torch.zeros(16, 8, dtype=torch.long), "labels": torch.randint(0, 2, (16,), generator=g)}
    teacher = _model(Architecture(2, 32, 2, 64), 0).eval()
    student = _model(Architecture(1, 16, 2, 32), 1)
    events: list[dict] = []
    train(student, teacher, LOSSES, enc, "classification", CONFIG, out,
          on_progress=lambda ev: events.append({"stage": ev.stage, "step": ev.completed, "checkpoint": ev.checkpoint}))
    main, barrier = process_state()
    if main:
        save_weights(out / "student.safetensors", student.state_dict())
        (out / "events.json").write_text(json.dumps(events))
    barrier()
    return events


if __name__ == "__main__":
    run(Path(sys.argv[1]))
