"""The distillation trainer: teacher fine-tuning and student distillation on the shared loop.

One loop (:class:`DistillLoop`, a :class:`hwnas.training.loop.TrainLoop`) serves
both teacher fine-tuning (loss ``task`` only, no teacher) and student
distillation. It runs on ``accelerate`` (:mod:`hwnas.training.processes`): the
same code runs on one CPU, under ``accelerate launch`` or ``torchrun`` (the
student and its loss modules are wrapped together in one DistributedDataParallel
module; every process takes its share of each global batch; only the main
process writes). Without the ``accelerate`` package a one-process stand-in is used.

Batches are a pure function of ``(seed, step)``: example order is a fresh
permutation per epoch, so a resumed run sees exactly the batches an
uninterrupted one would. Checkpoints (student, loss projections, optimizer,
random state) go to ``<out>/checkpoints`` in the one hwnas format
(:mod:`hwnas.training.checkpoint`). A ``<out>/checkpoint`` folder written by
releases before that format is refused with one line.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.distill.losses import DistillLoss, LossConfig, ModelOutputs
from hwnas.distill.models import forward_outputs, model_shape, set_attention
from hwnas.errors import InvalidConfig
from hwnas.progress import ProgressCallback
from hwnas.training.checkpoint import clear_checkpoints, save_weights
from hwnas.training.loop import TrainLoop
from hwnas.training.processes import MIXED_PRECISION_CHOICES, make_accelerator, process_state, resolve_precision
from hwnas.training.schedule import epoch_batch, linear_warmup_decay

__all__ = ["TrainConfig", "TrainResult", "train", "DistillLoop", "evaluate", "predict_logits", "batch_indices", "BatchPlan",
           "clear_checkpoint", "process_state", "MIXED_PRECISION_CHOICES"]

CHECKPOINT_DIR = "checkpoints"
LEGACY_CHECKPOINT_DIR = "checkpoint"  # the layout before hwnas.training.checkpoint; refused, never read
BEST_DIR = "best"


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Args:
        steps: optimiser steps (each over one global batch of ``batch_size`` examples).
        batch_size: examples per step, summed over processes.
        lr: peak learning rate of AdamW (linear warm-up for ``warmup`` of the steps, then linear decay to 0).
        weight_decay: AdamW weight decay.
        warmup: fraction of ``steps`` spent warming up, in ``[0, 1)``.
        max_len: tokens per example after truncation.
        checkpoint_every: steps between checkpoints (0: only at the end).
        eval_every: steps between evaluations on the evaluation data (0: only at the end).
        eval_batch_size: examples per evaluation forward pass.
        seed: seeds initialisation, batch order and dropout.
        mixed_precision: ``"auto"`` (bf16/fp16 on CUDA, none on CPU, where bf16
            autocast is usually slower), ``"no"``, ``"bf16"`` or ``"fp16"``.
        max_grad_norm: gradient clipping (0: none).
        bucket: batch examples of similar length together (see :class:`BatchPlan`).
        keep_best: with evaluation data and ``eval_every``, keep the weights of the best
            evaluation (accuracy, or Pearson's r for regression) in ``out_dir/best`` and
            end with them when the last step is not the best.
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_len: int = 128
    checkpoint_every: int = 200
    eval_every: int = 0
    eval_batch_size: int = 128
    seed: int = 0
    mixed_precision: str = "auto"
    max_grad_norm: float = 1.0
    bucket: bool = True
    keep_best: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_len", "eval_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidConfig(f"{name} must be an integer >= 1; got {v!r}")
        for name in ("checkpoint_every", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InvalidConfig(f"{name} must be an integer >= 0; got {v!r}")
        # `< math.inf` rather than math.isfinite, which raises OverflowError on a huge int
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < math.inf):
            raise InvalidConfig(f"lr must be a finite number > 0; got {self.lr!r}")
        if not (isinstance(self.warmup, (int, float)) and 0 <= self.warmup < 1):
            raise InvalidConfig(f"warmup must be in [0, 1); got {self.warmup!r}")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < math.inf):
            raise InvalidConfig(f"weight_decay must be a finite number >= 0; got {self.weight_decay!r}")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise InvalidConfig(f"mixed_precision must be one of {', '.join(MIXED_PRECISION_CHOICES)}; got {self.mixed_precision!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate of (0-based) ``step`` (the shared linear warm-up and decay)."""
        return linear_warmup_decay(step, peak=self.lr, warmup_steps=int(self.warmup * self.steps), total_steps=self.steps)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["keep_best"]:  # settings at their old default stay out of cache keys written before they existed
            del d["keep_best"]
        return d


@dataclass
class TrainResult:
    """What a training run did. ``metrics`` are on the evaluation data at the end."""

    steps: int
    resumed_from: int
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    loss_first: float = float("nan")
    loss_last: float = float("nan")
    wall_s: float = 0.0
    mixed_precision: str = "no"
    best_step: int | None = None
    total_s: float = 0.0  # training seconds over every invocation (``wall_s`` plus the runs before a resume)


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Example indices of global batch ``step`` (0-based): a new permutation of ``range(n)`` every epoch."""
    return epoch_batch(n, batch_size, step, seed)


class BatchPlan:
    """Length-bucketed batches that are a pure function of ``(seed, step)``.

    Every epoch is a fresh permutation of the examples, cut into chunks of
    ``batch_size * bucket`` examples; inside a chunk examples are sorted by
    length and cut into batches, and the batches of an epoch are shuffled.
    Batches then pad to similar lengths, which makes short-sentence tasks
    several times cheaper than random batches padded to their longest member.

    Args:
        lengths: tokens of every example (``n`` ints); ``None`` disables bucketing.
    """

    def __init__(self, n: int, batch_size: int, seed: int, lengths: np.ndarray | None = None, bucket: int = 50) -> None:
        self.n, self.batch_size, self.seed, self.bucket = n, batch_size, seed, bucket
        self.lengths = None if lengths is None else np.asarray(lengths)
        chunk = batch_size * bucket
        self.per_epoch = sum(-(-min(chunk, n - c) // batch_size) for c in range(0, n, chunk))
        self._cache: dict[int, list[np.ndarray]] = {}

    def _epoch(self, epoch: int) -> list[np.ndarray]:
        if epoch not in self._cache:
            rng = np.random.default_rng([self.seed, epoch, 1])
            perm = rng.permutation(self.n)
            chunk = self.batch_size * self.bucket
            batches: list[np.ndarray] = []
            for c in range(0, self.n, chunk):
                idx = perm[c: c + chunk]
                idx = idx[np.argsort(self.lengths[idx], kind="stable")]
                batches.extend(idx[i: i + self.batch_size] for i in range(0, len(idx), self.batch_size))
            order = rng.permutation(len(batches))
            self._cache = {epoch: [batches[i] for i in order]}
        return self._cache[epoch]

    def indices(self, step: int) -> np.ndarray:
        """Example indices of global batch ``step`` (0-based)."""
        if self.lengths is None:
            return batch_indices(self.n, self.batch_size, step, self.seed)
        epoch, k = divmod(step, self.per_epoch)
        return self._epoch(epoch)[k]


def _trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop padding columns beyond the longest example of the batch."""
    length = int(batch["attention_mask"].sum(1).max())
    return {k: (v[:, :length] if v.dim() == 2 and k != "labels" else v) for k, v in batch.items()}


class _Distillable(nn.Module):
    """Student and loss modules in one module, so that one DDP wrapper covers both."""

    def __init__(self, student: nn.Module, loss: DistillLoss, needs: set[str]) -> None:
        super().__init__()
        self.student = student
        self.loss = loss
        self.needs = needs

    def forward(self, batch: dict[str, torch.Tensor], teacher_out: ModelOutputs | None):
        s_out = forward_outputs(self.student, batch, self.needs)
        return self.loss(s_out, teacher_out, batch["labels"])


def refuse_legacy_checkpoint(out_dir: str | Path) -> None:
    """Raise one line when ``out_dir`` holds a checkpoint in the layout of releases before the shared loop."""
    legacy = Path(out_dir) / LEGACY_CHECKPOINT_DIR
    if (legacy / "state.json").is_file():
        raise InvalidConfig(f"{legacy} is a checkpoint in the format of hwnas releases before the shared training loop "
                            "and cannot be resumed; delete that folder to train this stage from its start")


def clear_checkpoint(out_dir: str | Path) -> None:
    """Remove the checkpoints (and the kept best weights) of a finished run whose model has been saved."""
    clear_checkpoints(Path(out_dir) / CHECKPOINT_DIR)
    for name in (BEST_DIR, LEGACY_CHECKPOINT_DIR):
        shutil.rmtree(Path(out_dir) / name, ignore_errors=True)


def _primary(metrics: dict[str, float], kind: str) -> float:
    value = metrics.get("accuracy" if kind == "classification" else "pearson", float("nan"))
    return value if math.isfinite(value) else -math.inf


def _save_best(folder: Path, student: nn.Module, step: int, metrics: dict[str, float]) -> None:
    from hwnas._files import atomic_write_text

    save_weights(folder / "model.safetensors", student.state_dict())
    atomic_write_text(folder / "best.json", json.dumps({"step": step, "metrics": metrics}) + "\n")


def _load_best(folder: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((folder / "best.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return info if (folder / "model.safetensors").is_file() and isinstance(info.get("step"), int) else None


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def predict_logits(model: nn.Module, encoded: dict[str, torch.Tensor], batch_size: int = 128,
                   device: Any = None) -> torch.Tensor:
    """Logits of ``model`` on every encoded example: ``n x num_labels`` float32 on the CPU.

    ``device``: where the batches go; ``None``: where the model's weights are (on a GPU machine a model that
    :func:`train` has used lives on the GPU).
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outs = []
    n = encoded["input_ids"].shape[0]
    # sort by length so that each forward pass pads little
    lengths = encoded["attention_mask"].sum(1)
    order = torch.argsort(lengths, descending=True)
    for start in range(0, n, batch_size):
        idx = order[start: start + batch_size]
        batch = _trim({k: v[idx].to(device) for k, v in encoded.items() if k != "labels"})
        outs.append(model(**batch).logits.float().cpu())
    logits = torch.empty(n, outs[0].shape[-1]) if outs else torch.empty(0, 1)
    if outs:
        logits[order] = torch.cat(outs)
    model.train(was_training)
    return logits


def metrics_from_logits(logits: torch.Tensor, labels: torch.Tensor, kind: str) -> dict[str, float]:
    """``accuracy`` for classification; ``pearson`` and ``mse`` for regression."""
    if kind == "classification":
        return {"accuracy": float((logits.argmax(-1) == labels).float().mean())}
    pred = logits.squeeze(-1).double()
    gold = labels.double()
    pearson = float(torch.corrcoef(torch.stack([pred, gold]))[0, 1]) if len(gold) > 1 else float("nan")
    return {"pearson": pearson, "mse": float(((pred - gold) ** 2).mean())}


def evaluate(model: nn.Module, encoded: dict[str, torch.Tensor], kind: str, batch_size: int = 128,
             device: Any = None) -> dict[str, float]:
    return metrics_from_logits(predict_logits(model, encoded, batch_size, device), encoded["labels"], kind)




# ---------------------------------------------------------------- the loop
class DistillLoop(TrainLoop):
    """Teacher fine-tuning or student distillation on :class:`~hwnas.training.loop.TrainLoop` (see :func:`train`)."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, loss_config: LossConfig,
                 train_encoded: dict[str, torch.Tensor], kind: str, config: TrainConfig, out_dir: str | Path, *,
                 eval_encoded: dict[str, torch.Tensor] | None, stage: str, on_progress: ProgressCallback | None,
                 on_evaluation: Callable[[int, dict[str, float]], None] | None, meta: dict[str, Any] | None) -> None:
        self.precision = resolve_precision(config.mixed_precision)
        out_dir = Path(out_dir)
        super().__init__(stage=stage, steps=config.steps, checkpoint_every=config.checkpoint_every,
                         checkpoints=out_dir / CHECKPOINT_DIR, accelerator=make_accelerator(self.precision),
                         on_progress=on_progress)
        self.config, self.kind, self.teacher, self.on_evaluation = config, kind, teacher, on_evaluation
        self.train_encoded, self.eval_encoded, self.best_dir = train_encoded, eval_encoded, out_dir / BEST_DIR
        self.device = self.accelerator.device
        torch.manual_seed(config.seed)
        self.needs = loss_config.needs()
        if teacher is None and "teacher" in self.needs:
            raise InvalidConfig(f"losses {sorted(n for n in loss_config.active if n != 'task')} need a teacher")
        self.attention = "eager" if "attentions" in self.needs else "sdpa"
        set_attention(student, self.attention)
        t_shape = model_shape(teacher) if teacher is not None else model_shape(student)
        self.model = _Distillable(student, DistillLoss(loss_config, model_shape(student), t_shape, kind), self.needs - {"teacher"})
        if teacher is not None:
            set_attention(teacher, self.attention)
            teacher.to(self.device).eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.dim() < 2 else decay).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
        expect = {"train_config": config.to_dict(), "loss_config": loss_config.to_dict(),
                  "examples": int(train_encoded["input_ids"].shape[0]), **(meta or {})}
        self.expect = json.loads(json.dumps(expect, default=str))
        self.out_dir = out_dir
        self.result = TrainResult(steps=config.steps, resumed_from=0, metrics={}, mixed_precision=self.precision)
        self.best: dict[str, Any] | None = None
        self.before_s = 0.0  # training seconds of the invocations before a resume

    # ------------------------------------------------------------ resume
    def check_resume(self, state: dict[str, Any]) -> None:
        for key, value in self.expect.items():
            if state.get(key) != value:
                raise InvalidConfig(
                    f"checkpoint {self.checkpoints} was written with different {key} ({state.get(key)!r}, now {value!r}); "
                    "use the same settings to resume, or another output folder"
                )

    def resume(self) -> None:
        refuse_legacy_checkpoint(self.out_dir)
        state = self.restore()
        self.result.resumed_from = self.start
        if state:  # the curve so far (losses and evaluations) continues across a resume
            self.result.history = list(state.get("history", []))
            self.result.loss_first = float(state.get("loss_first", float("nan")))
            self.before_s = float(state.get("train_s", 0.0))
        if self.config.keep_best and self.start > 0:
            self.best = _load_best(self.best_dir)

    def checkpoint_state(self) -> dict[str, Any]:
        # the world may change on resume: batches are global; the history is the learning curve so far
        return {**self.expect, "world_size": self.world, "history": self.result.history,
                "loss_first": self.result.loss_first, "train_s": self.before_s + self.elapsed()}

    # ------------------------------------------------------------ set-up for several processes
    def prepare(self) -> None:
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        if self.config.batch_size < self.world:
            raise InvalidConfig(f"batch_size ({self.config.batch_size}) must be at least the number of processes ({self.world})")
        n = int(self.train_encoded["input_ids"].shape[0])
        lengths = self.train_encoded["attention_mask"].sum(1).numpy() if self.config.bucket else None
        self.plan = BatchPlan(n, self.config.batch_size, self.config.seed, lengths)
        self.model.train()

    # ------------------------------------------------------------ step
    def lr_at(self, step: int) -> float:
        return self.config.lr_at(step)

    def train_step(self, step: int) -> dict[str, float]:
        acc, config = self.accelerator, self.config
        self.accelerator.unwrap_model(self.model).loss.set_progress(step / max(1, config.steps - 1))
        idx = self.plan.indices(step)[self.rank :: self.world]
        batch = _trim({k: v[torch.from_numpy(idx)].to(self.device) for k, v in self.train_encoded.items()})
        with acc.autocast():
            teacher_out = None
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_out = forward_outputs(self.teacher, batch, self.needs - {"teacher"})
            total, parts = self.model(batch, teacher_out)
        value = float(total.detach())
        self.stop_if_diverged(step, [value])  # before any update: the last checkpoint stays the last good one
        acc.backward(total)
        if config.max_grad_norm > 0:
            acc.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if math.isnan(self.result.loss_first):
            self.result.loss_first = value
        self.result.loss_last = value
        parts = {"loss": value, **parts}
        if step % 10 == 0 or step + 1 == config.steps:
            self.result.history.append({"step": step + 1, **parts})
        return parts

    @property
    def student(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.model).student

    def after_step(self, step: int, metrics: dict[str, float]) -> None:
        """Evaluation every ``eval_every`` steps; with ``keep_best``, the best weights so far are kept."""
        done, config = step + 1, self.config
        if self.eval_encoded is None or not config.eval_every or done % config.eval_every or done >= config.steps:
            return
        m = evaluate(self.student, self.eval_encoded, self.kind, config.eval_batch_size, self.device)
        self.result.history.append({"step": done, **{f"eval_{k}": v for k, v in m.items()}})
        if self.on_evaluation and self.main:
            self.on_evaluation(done, m)
        if config.keep_best and (self.best is None or _primary(m, self.kind) > _primary(self.best["metrics"], self.kind)):
            self.best = {"step": done, "metrics": m}
            if self.main:
                _save_best(self.best_dir, self.student, done, m)
        self.model.train()

    # ------------------------------------------------------------ the end
    def finish(self) -> TrainResult:
        """Final evaluation (handing back the best weights when they beat the last), attention back to sdpa."""
        result, final = self.result, self.student
        self.accelerator.wait_for_everyone()
        result.wall_s = self.wall_s
        result.total_s = self.before_s + self.wall_s
        final.eval()
        if self.eval_encoded is not None:
            result.metrics = evaluate(final, self.eval_encoded, self.kind, self.config.eval_batch_size, self.device)
            if self.on_evaluation and self.main:
                self.on_evaluation(self.config.steps, result.metrics)
            result.best_step = self.config.steps
            self.accelerator.wait_for_everyone()
            best = self.best
            if best is not None and _primary(best["metrics"], self.kind) > _primary(result.metrics, self.kind):
                from safetensors.torch import load_file

                final.load_state_dict(load_file(str(self.best_dir / "model.safetensors")))
                result.metrics, result.best_step = dict(best["metrics"]), int(best["step"])
        set_attention(final, "sdpa")
        if self.teacher is not None:
            set_attention(self.teacher, "sdpa")
        final.to("cpu")
        return result


def train(
    student: nn.Module,
    teacher: nn.Module | None,
    loss_config: LossConfig,
    train_encoded: dict[str, torch.Tensor],
    kind: str,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    eval_encoded: dict[str, torch.Tensor] | None = None,
    resume: bool = True,
    stage: str = "distill",
    on_progress: ProgressCallback | None = None,
    on_evaluation: Callable[[int, dict[str, float]], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``student`` in place (distilling from ``teacher`` when given).

    Args:
        train_encoded, eval_encoded: outputs of :func:`hwnas.distill.data.encode`.
        kind: ``"classification"`` or ``"regression"``.
        out_dir: checkpoints go to ``out_dir/checkpoints``; the latest is resumed when
            ``resume`` (with matching settings). They are kept at the end (holding the
            final state); remove them with :func:`clear_checkpoint` once the trained
            model is safely saved.
        stage, on_progress: ``on_progress`` receives ``ProgressEvent(stage, step, steps,
            loss parts, checkpoint)`` on the main process after every step.
        on_evaluation: called with ``(step, metrics)`` after each evaluation.
        meta: extra fields that must match for a checkpoint to be resumed.

    Returns:
        a :class:`TrainResult`; the student holds the trained weights.
    """
    loop = DistillLoop(student, teacher, loss_config, train_encoded, kind, config, out_dir, eval_encoded=eval_encoded,
                       stage=stage, on_progress=on_progress, on_evaluation=on_evaluation, meta=meta)
    if resume:
        loop.resume()
    loop.prepare()
    loop.run()
    return loop.finish()
