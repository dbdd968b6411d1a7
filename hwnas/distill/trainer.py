"""The distillation trainer: resumable, mixed precision where supported, distributed-ready.

One loop serves both teacher fine-tuning (loss ``task`` only, no teacher) and
student distillation. It is driven by ``accelerate.Accelerator``, so the same
code runs on one CPU, under ``accelerate launch`` or ``torchrun`` (the student
and its loss modules are wrapped together in one DistributedDataParallel
module; every process takes its share of each global batch; only the main
process writes). Without the ``accelerate`` package, a one-process stand-in
with the same few methods is used (CPU, or one GPU with bf16 autocast).

Batches are a pure function of ``(seed, step)``: example order is a fresh
permutation per epoch, so a resumed run sees exactly the batches an
uninterrupted one would. A checkpoint is a folder with ``state.safetensors``
(student, loss projections, optimizer moments, random state) and
``state.json`` (step, settings, scalar optimizer state); it is written to a
temporary folder and renamed, so a kill never leaves a half-written one.
"""

from __future__ import annotations

import json
import math
import shutil
import time
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
from hwnas.training.schedule import epoch_batch, linear_warmup_decay

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "predict_logits", "batch_indices", "BatchPlan", "clear_checkpoint", "process_state",
           "MIXED_PRECISION_CHOICES"]

MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")
CHECKPOINT_DIR = "checkpoint"


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
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise InvalidConfig(f"lr must be > 0; got {self.lr!r}")
        if not (isinstance(self.warmup, (int, float)) and 0 <= self.warmup < 1):
            raise InvalidConfig(f"warmup must be in [0, 1); got {self.warmup!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise InvalidConfig(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise InvalidConfig(f"mixed_precision must be one of {', '.join(MIXED_PRECISION_CHOICES)}; got {self.mixed_precision!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate of (0-based) ``step``."""
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


def process_state():
    """``(is_main_process, wait_for_everyone)`` of this process (one process: ``(True, no-op)``).

    Under ``torchrun``/``accelerate launch`` only the main process writes files;
    the others wait at the same barriers.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return True, lambda: None
    import torch

    try:
        from accelerate import PartialState
    except ImportError:
        raise InvalidConfig("several processes need the accelerate package: pip install 'hwnas[distributed]'") from None

    # cpu=True: without it accelerate does not set up several CPU processes
    state = PartialState(cpu=not torch.cuda.is_available())
    return state.is_main_process, state.wait_for_everyone


class _SingleProcess:
    """The few ``Accelerator`` methods the loop uses, for one process without ``accelerate`` installed."""

    num_processes, process_index, is_main_process = 1, 0, True

    def __init__(self, precision: str) -> None:
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.precision = precision
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def prepare(self, *objects):
        return tuple(o.to(self.device) if isinstance(o, nn.Module) else o for o in objects)

    def autocast(self):
        import contextlib

        if self.precision == "no":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def clip_grad_norm_(self, params, max_norm: float):
        return torch.nn.utils.clip_grad_norm_(list(params), max_norm)

    def unwrap_model(self, module: nn.Module) -> nn.Module:
        return module

    def wait_for_everyone(self) -> None:
        pass


def _make_accelerator(precision: str):
    """``accelerate.Accelerator`` when installed (needed for several processes), else a one-process stand-in."""
    import os

    try:
        from accelerate import Accelerator
    except ImportError:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise InvalidConfig("several processes need the accelerate package: pip install 'hwnas[distributed]'") from None
        if precision == "fp16":
            raise InvalidConfig("mixed_precision='fp16' needs the accelerate package (gradient scaling); use bf16 or no")
        return _SingleProcess(precision)
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())


def _resolve_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


# ---------------------------------------------------------------- checkpoints
def _save_checkpoint(folder: Path, module: _Distillable, optimizer: torch.optim.Optimizer, step: int,
                     meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for k, v in module.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    opt = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for idx, state in opt["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"opt.{idx}.{key}"] = value.detach().cpu().reshape(-1).contiguous() if value.dim() == 0 else value.detach().cpu().contiguous()
                if value.dim() == 0:
                    scalars[f"{idx}.{key}"] = "scalar"
            else:
                scalars[f"{idx}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, str(tmp / "state.safetensors"))
    state_json = {"step": step, "param_groups": opt["param_groups"], "optimizer_scalars": scalars, **meta}
    (tmp / "state.json").write_text(json.dumps(state_json, indent=1, default=str) + "\n")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(folder: Path, module: _Distillable, optimizer: torch.optim.Optimizer,
                     expect: dict[str, Any]) -> int:
    from safetensors.torch import load_file

    meta = json.loads((folder / "state.json").read_text())
    for key, value in expect.items():
        if meta.get(key) != value:
            raise InvalidConfig(
                f"checkpoint {folder} was written with different {key} ({meta.get(key)!r}, now {value!r}); "
                "use the same settings to resume, or another output folder"
            )
    tensors = load_file(str(folder / "state.safetensors"))
    module.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["optimizer_scalars"].items():
        idx, name = key.split(".", 1)
        if value == "scalar":
            state[int(idx)][name] = state[int(idx)][name].reshape(())
        else:
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["step"])


def clear_checkpoint(out_dir: str | Path) -> None:
    """Remove the checkpoint (and the kept best weights) of a finished run whose model has been saved."""
    for name in (CHECKPOINT_DIR, BEST_DIR):
        for suffix in ("", ".tmp", ".old"):
            shutil.rmtree(Path(out_dir) / (name + suffix), ignore_errors=True)


BEST_DIR = "best"


def _primary(metrics: dict[str, float], kind: str) -> float:
    value = metrics.get("accuracy" if kind == "classification" else "pearson", float("nan"))
    return value if math.isfinite(value) else -math.inf


def _save_best(folder: Path, student: nn.Module, step: int, metrics: dict[str, float]) -> None:
    from safetensors.torch import save_file

    from hwnas._files import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "model.safetensors.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}, str(tmp))
    tmp.replace(folder / "model.safetensors")
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
                   device: Any = "cpu") -> torch.Tensor:
    """Logits of ``model`` on every encoded example: ``n x num_labels`` float32 on the CPU."""
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
             device: Any = "cpu") -> dict[str, float]:
    return metrics_from_logits(predict_logits(model, encoded, batch_size, device), encoded["labels"], kind)


# ---------------------------------------------------------------- the loop
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
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
    on_evaluation: Callable[[int, dict[str, float]], None] | None = None,
    meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``student`` in place (distilling from ``teacher`` when given).

    Args:
        train_encoded, eval_encoded: outputs of :func:`hwnas.distill.data.encode`.
        kind: ``"classification"`` or ``"regression"``.
        out_dir: the checkpoint goes to ``out_dir/checkpoint``; it is resumed when
            ``resume`` and it exists (with matching settings). It is kept at the end
            (holding the final state); remove it with :func:`clear_checkpoint` once
            the trained model is safely saved.
        on_step: called on the main process after every step with ``(step, steps, loss parts)``.
        on_evaluation: called with ``(step, metrics)`` after each evaluation.
        meta: extra fields that must match for a checkpoint to be resumed.

    Returns:
        a :class:`TrainResult`; the student holds the trained weights.
    """
    precision = _resolve_precision(config.mixed_precision)
    accelerator = _make_accelerator(precision)
    device = accelerator.device
    torch.manual_seed(config.seed)
    needs = loss_config.needs()
    if teacher is None and "teacher" in needs:
        raise InvalidConfig(f"losses {sorted(n for n in loss_config.active if n != 'task')} need a teacher")
    attention = "eager" if "attentions" in needs else "sdpa"
    set_attention(student, attention)
    t_shape = model_shape(teacher) if teacher is not None else model_shape(student)
    loss = DistillLoss(loss_config, model_shape(student), t_shape, kind)
    module = _Distillable(student, loss, needs - {"teacher"})
    if teacher is not None:
        set_attention(teacher, attention)
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        (no_decay if p.dim() < 2 else decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    out_dir = Path(out_dir)
    ckpt = out_dir / CHECKPOINT_DIR
    expect = {"train_config": config.to_dict(), "loss_config": loss_config.to_dict(), "examples": int(train_encoded["input_ids"].shape[0]),
              **(meta or {})}
    expect = json.loads(json.dumps(expect, default=str))
    start_step = 0
    if resume and (ckpt / "state.json").is_file():
        start_step = _load_checkpoint(ckpt, module, optimizer, expect)
    module, optimizer = accelerator.prepare(module, optimizer)
    n = int(train_encoded["input_ids"].shape[0])
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size < world:
        raise InvalidConfig(f"batch_size ({config.batch_size}) must be at least the number of processes ({world})")
    result = TrainResult(steps=config.steps, resumed_from=start_step, metrics={}, mixed_precision=precision)
    plan = BatchPlan(n, config.batch_size, config.seed,
                     train_encoded["attention_mask"].sum(1).numpy() if config.bucket else None)
    best_dir = out_dir / BEST_DIR
    best = _load_best(best_dir) if config.keep_best and start_step > 0 else None
    t0 = time.perf_counter()
    module.train()
    for step in range(start_step, config.steps):
        idx = plan.indices(step)[rank::world]
        batch = _trim({k: v[torch.from_numpy(idx)].to(device) for k, v in train_encoded.items()})
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        with accelerator.autocast():
            teacher_out = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_out = forward_outputs(teacher, batch, needs - {"teacher"})
            total, parts = module(batch, teacher_out)
        accelerator.backward(total)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(module.parameters(), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        value = float(total.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"the training loss became {value} at step {step + 1}; lower lr or check the data")
        if math.isnan(result.loss_first):
            result.loss_first = value
        result.loss_last = value
        parts = {"loss": value, **parts}
        if step % 10 == 0 or step + 1 == config.steps:
            result.history.append({"step": step + 1, **parts})
        if accelerator.is_main_process and on_step:
            on_step(step + 1, config.steps, parts)
        done = step + 1
        if eval_encoded is not None and config.eval_every and done % config.eval_every == 0 and done < config.steps:
            m = evaluate(accelerator.unwrap_model(module).student, eval_encoded, kind, config.eval_batch_size, device)
            result.history.append({"step": done, **{f"eval_{k}": v for k, v in m.items()}})
            if on_evaluation and accelerator.is_main_process:
                on_evaluation(done, m)
            if config.keep_best and (best is None or _primary(m, kind) > _primary(best["metrics"], kind)):
                best = {"step": done, "metrics": m}
                if accelerator.is_main_process:
                    _save_best(best_dir, accelerator.unwrap_model(module).student, done, m)
            module.train()
        if config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps:
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                _save_checkpoint(ckpt, accelerator.unwrap_model(module), optimizer, done, expect)
    accelerator.wait_for_everyone()
    if config.checkpoint_every and start_step < config.steps and accelerator.is_main_process:
        # the finished state too, so that a kill before the caller has saved the model loses no training
        _save_checkpoint(ckpt, accelerator.unwrap_model(module), optimizer, config.steps, expect)
    result.wall_s = time.perf_counter() - t0
    final = accelerator.unwrap_model(module).student
    final.eval()
    if eval_encoded is not None:
        result.metrics = evaluate(final, eval_encoded, kind, config.eval_batch_size, device)
        if on_evaluation and accelerator.is_main_process:
            on_evaluation(config.steps, result.metrics)
        result.best_step = config.steps
        accelerator.wait_for_everyone()
        if best is not None and _primary(best["metrics"], kind) > _primary(result.metrics, kind):
            from safetensors.torch import load_file

            final.load_state_dict(load_file(str(best_dir / "model.safetensors")))
            result.metrics, result.best_step = dict(best["metrics"]), int(best["step"])
    set_attention(final, "sdpa")
    if teacher is not None:
        set_attention(teacher, "sdpa")
    final.to("cpu")
    return result
