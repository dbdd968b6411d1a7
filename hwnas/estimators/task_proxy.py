"""A few-step task proxy, in the spirit of KD-NAS: train each student briefly, score it on held-out rows.

The student starts where ``hwnas distill`` would start it (the supernet's slice,
or the teacher's leading layers and units), is fine-tuned with the task's labels
for ``steps`` steps on the first ``train_rows`` examples of the task file, and is
scored by accuracy on the next ``eval_rows`` examples (never trained on). Every
architecture sees the same batches in the same order (``seed``). Scores are
cached on disk, keyed by the architecture and everything that changes a score
(weights, data file content, settings), so a search that asks again pays nothing.

Cost: tens of seconds per architecture of ``small`` on one CPU core at the
defaults; the benchmark (``bench/bench_estimators.py``) prints the measured cost.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from hwnas._files import sha256_file
from hwnas.errors import InvalidConfig, InvalidData, check_int
from hwnas.estimators._cache import DiskResults
from hwnas.estimators._encoders import EncoderSource
from hwnas.estimators.base import ESTIMATORS, AccuracyEstimator
from hwnas.space import Architecture

__all__ = ["FewStepTask"]


@ESTIMATORS.register("task-proxy")
class FewStepTask(AccuracyEstimator):
    """Held-out accuracy after a few steps of task fine-tuning (higher is better).

    Args:
        task: a labelled ``.tsv``/``.csv``/``.jsonl`` file (as ``hwnas distill --task``).
        supernet, teacher: where the student's first weights come from (see :class:`EncoderSource`).
        steps, batch_size, lr: the short fine-tune (AdamW, linear decay to 0).
        train_rows, eval_rows: the first ``train_rows`` rows train, the next ``eval_rows`` score.
        max_len: tokens per example.
        seed: batch order and classifier initialisation.
        cache: a JSON file for scores; ``None``: ``~/.cache/hwnas/task-proxy/<signature>.json``;
            ``False``: memory only.
        threads: torch intra-op threads while training (``None``: unchanged).
    """

    name = "task-proxy"
    requires = frozenset({"task"})
    description = "a few fine-tuning steps on the task, accuracy on held-out rows (KD-NAS-style); ~10-60 s"

    def __init__(self, *, task: str | Path, supernet: Any = None, teacher: str | Path = "default", steps: int = 60,
                 batch_size: int = 16, lr: float = 1e-4, train_rows: int = 2000, eval_rows: int = 500,
                 max_len: int = 64, seed: int = 0, cache: str | Path | bool | None = None,
                 threads: int | None = None, **_: Any) -> None:
        super().__init__()
        for n, v in (("steps", steps), ("batch_size", batch_size), ("train_rows", train_rows),
                     ("eval_rows", eval_rows), ("max_len", max_len)):
            check_int(n, v)
        if not isinstance(lr, (int, float)) or not 0 < lr < 1:
            raise InvalidConfig(f"lr must be a number in (0, 1); got {lr!r}")
        from hwnas.distill.data import load_task

        path = Path(task)
        if not path.is_file():
            raise InvalidData(f"task file {path} does not exist")
        data = load_task(path, limit=train_rows + eval_rows)
        if data.kind != "classification":
            raise InvalidConfig(f"task-proxy scores classification tasks by accuracy; {path} looks like {data.kind}")
        if len(data) < train_rows + eval_rows:
            raise InvalidData(f"task file {path} has {len(data)} rows; task-proxy needs train_rows + eval_rows = "
                              f"{train_rows + eval_rows}")
        self.train = data.subset(range(train_rows))
        self.eval = data.subset(range(train_rows, train_rows + eval_rows))
        if len(set(self.eval.labels)) < 2:
            raise InvalidData(f"the held-out rows of {path} hold one class only; give a shuffled task file")
        self.num_labels = data.num_labels
        self.source = EncoderSource(supernet=supernet, teacher=teacher)
        self.steps, self.batch_size, self.lr, self.max_len, self.seed = steps, batch_size, float(lr), max_len, seed
        self.threads = threads
        settings = {"source": self.source.signature, "data": sha256_file(path), "steps": steps, "batch_size": batch_size,
                    "lr": self.lr, "train_rows": train_rows, "eval_rows": eval_rows, "max_len": max_len, "seed": seed}
        self.signature = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        self._cache = DiskResults(cache, name=self.name, signature=self.signature, field="scores",
                                  clean=lambda v: float(v) if isinstance(v, (int, float)) and np.isfinite(v) else None)
        self.cache_path = self._cache.path
        self._disk = self._cache.read()
        self._encoded: Any = None

    def validate(self, arch: Architecture) -> Architecture:
        return self.source.validate(arch)

    def check_space(self, space) -> None:
        self.validate(space.largest)

    # ------------------------------------------------------------ scoring
    def _score(self, archs: list[Architecture]) -> np.ndarray:
        out = []
        for arch in archs:
            if arch.key not in self._disk:
                self._disk[arch.key] = self._train_and_score(arch)
                self._cache.write(self._disk)
            out.append(self._disk[arch.key])
        return np.array(out, dtype=np.float64)

    def _train_and_score(self, arch: Architecture) -> float:
        import torch
        from transformers import BertForSequenceClassification

        from hwnas.distill.data import encode

        if self._encoded is None:
            tok = self.source.tokenizer
            self._encoded = (encode(tok, self.train, self.max_len), encode(tok, self.eval, self.max_len))
        train, held = self._encoded
        old_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            torch.manual_seed(self.seed)
            encoder = self.source.encoder(arch)
            model = BertForSequenceClassification(encoder.config.__class__.from_dict(
                {**encoder.config.to_dict(), "num_labels": self.num_labels}))
            model.bert.load_state_dict(encoder.state_dict(), strict=False)
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=0.01)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / self.steps))
            gen = torch.Generator().manual_seed(self.seed)
            n = train["input_ids"].shape[0]
            order = torch.randperm(n, generator=gen)
            for step in range(self.steps):
                idx = order[(torch.arange(self.batch_size) + step * self.batch_size) % n]
                batch = {k: v[idx] for k, v in train.items()}
                width = int(batch["attention_mask"].sum(1).max())
                loss = model(**{k: (v[:, :width] if v.dim() == 2 else v) for k, v in batch.items()}).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for i in range(0, held["input_ids"].shape[0], 64):
                    b = {k: v[i : i + 64] for k, v in held.items() if k != "labels"}
                    correct += int((model(**b).logits.argmax(-1) == held["labels"][i : i + 64]).sum())
            return correct / held["input_ids"].shape[0]
        finally:
            torch.set_num_threads(old_threads)
