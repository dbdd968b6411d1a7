"""The task teacher: the task-agnostic teacher fine-tuned on the task, cached by content.

The cache key is a hash of what determines the result: the teacher's weights
file, the training examples and labels, and the training settings. A folder
``<cache>/<key>/`` holds the fine-tuned model, its tokenizer and
``teacher.json`` (settings and evaluation metrics); the next run with the same
inputs reuses it. Fine-tuning checkpoints into ``<cache>/<key>.partial/`` and
resumes from there after a kill; the finished folder appears by an atomic rename.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.distill.data import TaskData, encode
from hwnas.distill.losses import LossConfig
from hwnas.distill.trainer import TrainConfig, clear_checkpoint, evaluate, process_state, train
from hwnas.errors import InvalidConfig
from hwnas.progress import ProgressCallback

__all__ = ["TaskTeacher", "finetune_teacher", "load_task_teacher", "task_head_labels", "teacher_key", "FULL_TEACHER_RESULT",
           "full_teacher_note"]

TEACHER_FILE = "teacher.json"

#: What a whole-epoch teacher gave in a benchmark run (a citation of a recorded result, not a live measurement;
#: ``tests/distill/test_teacher_epochs.py`` checks it against the file it cites).
FULL_TEACHER_RESULT = {"file": "bench/results/teacher-sst2-epoch1.json", "accuracy": 0.9305, "steps": 1894,
                       "eval_rows": 2000, "wall": "about 90 min on 2 shared cores"}


def full_teacher_note(steps: int) -> str:
    """One line telling a user of a short teacher fine-tune what a whole epoch gives and how to get it."""
    r = FULL_TEACHER_RESULT
    return (f"the teacher was fine-tuned for only {steps} steps; `hwnas distill` fine-tunes it for a whole epoch "
            f"by default (--teacher-epochs 1): on SST-2 one epoch ({r['steps']:,} steps) scored {r['accuracy']:.4f} "
            f"on {r['eval_rows']:,} held-out rows, {r['wall']} ({r['file']})")


@dataclass
class TaskTeacher:
    """A teacher ready for distillation: its folder, the model, and its metrics on the evaluation data."""

    path: Path
    model: Any
    tokenizer: Any
    metrics: dict[str, float]
    reused: bool
    info: dict[str, Any]


def _hash_file(path: Path, h: Any) -> None:
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)


def teacher_key(base: Path, data: TaskData, config: TrainConfig, max_len: int) -> str:
    """A short hash of the base teacher's weights, the training data and the settings."""
    h = hashlib.sha256()
    weights = [p for p in sorted(base.glob("*.safetensors"))] or [p for p in sorted(base.glob("*.bin"))]
    for p in weights + [base / "config.json"]:
        if p.is_file():
            _hash_file(p, h)
    h.update(json.dumps({"texts": data.texts, "pairs": data.pairs, "labels": data.labels, "kind": data.kind,
                         "label_names": data.label_names}, ensure_ascii=False).encode())
    h.update(json.dumps({"train": config.to_dict(), "max_len": max_len}, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _load(path: Path, data_kind: str, num_labels: int):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path)
    if model.config.num_labels != num_labels:
        raise InvalidConfig(
            f"teacher {path} has {model.config.num_labels} outputs but the task has {num_labels} "
            f"({'classes' if data_kind == 'classification' else 'regression output'})"
        )
    return model.eval(), AutoTokenizer.from_pretrained(path)


def task_head_labels(config: Any) -> int | None:
    """The number of labels of a model config whose architecture has a sequence-classification head (a teacher
    already fine-tuned for a task, used as is), else ``None`` (a base encoder, to be fine-tuned first)."""
    if any(a.endswith("ForSequenceClassification") for a in (getattr(config, "architectures", None) or [])):
        return int(config.num_labels)
    return None


def load_task_teacher(path: str | Path, eval_encoded: dict[str, Any] | None, kind: str, num_labels: int,
                      batch_size: int = 128) -> TaskTeacher:
    """A teacher already fine-tuned on the task (a ``save_pretrained`` folder with a classification head)."""
    path = Path(path)
    model, tokenizer = _load(path, kind, num_labels)
    info_file = path / TEACHER_FILE
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    metrics = evaluate(model, eval_encoded, kind, batch_size) if eval_encoded is not None else info.get("metrics", {})
    return TaskTeacher(path, model, tokenizer, metrics, True, info)


def finetune_teacher(
    base: str | Path,
    train_data: TaskData,
    eval_data: TaskData | None,
    config: TrainConfig,
    cache_dir: str | Path,
    *,
    max_len: int = 128,
    on_progress: ProgressCallback | None = None,
    on_status: Callable[[str], None] | None = None,
    epochs: int | None = None,
) -> TaskTeacher:
    """Fine-tune the encoder in ``base`` on the task (loss ``task``), or reuse the cached result.

    Args:
        base: a model folder (``AutoModel``-loadable; a new classification head is added).
        cache_dir: where fine-tuned teachers are kept, one folder per cache key.
        on_progress: receives ``ProgressEvent(stage="teacher", ...)`` after every fine-tuning step.
        epochs: the epochs ``config.steps`` stands for (recorded in ``teacher.json``; not part of the key).

    ``teacher.json`` records ``train_s`` (seconds of fine-tuning over every invocation, a resumed run
    included), ``cpu_s`` (process CPU seconds of the last invocation), the learning curve and the best step.
    """
    import time

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = Path(base)
    cache_dir = Path(cache_dir)
    key = teacher_key(base, train_data, config, max_len)
    final = cache_dir / key
    tokenizer = AutoTokenizer.from_pretrained(base)
    eval_encoded = encode(tokenizer, eval_data, max_len) if eval_data is not None else None
    if (final / TEACHER_FILE).is_file():
        if on_status:
            on_status(f"reusing fine-tuned teacher {final}")
        info = json.loads((final / TEACHER_FILE).read_text())
        model, tokenizer = _load(final, train_data.kind, train_data.num_labels)
        return TaskTeacher(final, model, tokenizer, info.get("metrics", {}), True, info)
    partial = cache_dir / f"{key}.partial"
    main, barrier = process_state()
    if main:
        partial.mkdir(parents=True, exist_ok=True)
    barrier()
    problem = "regression" if train_data.kind == "regression" else "single_label_classification"
    # The new head's random start is drawn from the teacher's own seed, not from whatever the process drew
    # before (a student built, data shuffled): the fine-tuned weights are then a function of the cache key,
    # as the key claims, and a teacher fine-tuned again elsewhere with the same key comes out the same.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=train_data.num_labels, problem_type=problem,
            id2label={i: n for i, n in enumerate(train_data.label_names)} if train_data.label_names else None,
            label2id={n: i for i, n in enumerate(train_data.label_names)} if train_data.label_names else None,
        )
    if on_status:
        length = f"{epochs} epoch{'s' if epochs != 1 else ''}, {config.steps} steps" if epochs else f"{config.steps} steps"
        evals = f", evaluated every {config.eval_every} steps, best kept" if config.eval_every else ""
        on_status(f"fine-tuning teacher {base.name} on {len(train_data)} examples ({length}{evals})")
    cpu0 = time.process_time()
    result = train(model, None, LossConfig(weights={"task": 1.0}), encode(tokenizer, train_data, max_len),
                   train_data.kind, config, partial, eval_encoded=eval_encoded, stage="teacher", on_progress=on_progress)
    info = {
        "base": str(base),
        "key": key,
        "task": train_data.describe(),
        "eval": eval_data.describe() if eval_data is not None else None,
        "train_config": config.to_dict(),
        "max_len": max_len,
        "metrics": result.metrics,
        "loss_first": result.loss_first,
        "loss_last": result.loss_last,
        "train_s": result.total_s,
        "train_s_last_run": result.wall_s,
        "cpu_s": time.process_time() - cpu0,
        "resumed_from": result.resumed_from,
        "epochs": epochs,
        "best_step": result.best_step,
        # the learning curve: held-out metrics at every evaluation (``eval_every``), for the report and benchmarks
        "curve": [h for h in result.history if any(k.startswith("eval_") for k in h)],
    }
    if main:
        # Written into the private folder `partial`, which is renamed into place as a whole below: a
        # crash leaves a partial folder that is never read, so single files need no atomic writer here.
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        (partial / TEACHER_FILE).write_text(json.dumps(info, indent=2) + "\n")
        clear_checkpoint(partial)
        if final.exists():  # another run finished first; keep its copy
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.rename(final)
    barrier()
    model, tokenizer = _load(final, train_data.kind, train_data.num_labels)
    return TaskTeacher(final, model, tokenizer, result.metrics, False, info)
