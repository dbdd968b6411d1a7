"""The one training loop skeleton: what every hwnas training run does the same way.

A run is set up by its subclass (model, optimizer, data), then

1. **resume**: :meth:`TrainLoop.restore` loads the latest checkpoint under
   ``checkpoints`` into the model and optimizer (after :meth:`check_resume` has
   compared the stored settings with the current ones);
2. **steps**: for every step from there, the learning rate of the shared schedule is
   set and :meth:`train_step` (the subclass's forward, backward and optimizer step)
   runs, then :meth:`after_step` (logging, evaluation);
3. **checkpoints**: every ``checkpoint_every`` steps and after the last one, the main
   process writes one checkpoint (:mod:`hwnas.training.checkpoint`), then
   :meth:`after_checkpoint` runs on every process;
4. **progress**: the main process emits one :class:`~hwnas.progress.ProgressEvent`
   per step (``checkpoint=True`` on steps that wrote one);
5. **divergence**: a subclass passes each step's losses to :meth:`TrainLoop.stop_if_diverged`
   before its optimizer step; a non-finite loss on any process stops every process with
   :class:`~hwnas.errors.TrainingDiverged` before the weights change, so the last
   checkpoint stays the last good one.

Several processes go through ``accelerate`` (:mod:`hwnas.training.processes`).
Supernet training (:mod:`hwnas.supernet.train`) and distillation
(:mod:`hwnas.distill.trainer`) differ only in their hooks.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import TrainingDiverged
from hwnas.progress import ProgressCallback, StatusCallback, emit
from hwnas.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

__all__ = ["TrainLoop"]


class TrainLoop(ABC):
    """Set-up, resume, step, checkpoint and progress of one training run.

    Subclasses set ``self.model`` (the module a checkpoint holds) and ``self.optimizer``
    before :meth:`restore` and :meth:`run`, and implement :meth:`lr_at` and :meth:`train_step`.

    Args:
        stage: the :class:`~hwnas.progress.ProgressEvent` stage name.
        steps: total optimizer steps (a resumed run continues up to this number).
        checkpoint_every: steps between checkpoints (0: none at all).
        checkpoints: the folder of checkpoints (``step-NNNNNNN/`` and ``latest.json``).
        accelerator: from :func:`hwnas.training.processes.make_accelerator`.
    """

    model: Any
    optimizer: Any

    def __init__(self, *, stage: str, steps: int, checkpoint_every: int, checkpoints: str | Path, accelerator: Any,
                 on_progress: ProgressCallback | None = None, on_status: StatusCallback | None = None) -> None:
        self.stage, self.steps, self.checkpoint_every = stage, steps, checkpoint_every
        self.checkpoints = Path(checkpoints)
        self.accelerator = accelerator
        self.on_progress, self.on_status = on_progress, on_status
        self.start = 0
        self.wall_s = 0.0
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------ hooks
    @abstractmethod
    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based ``step``."""

    @abstractmethod
    def train_step(self, step: int) -> dict[str, float]:
        """Forward, backward and optimizer step on global batch ``step``; returns its metrics (``loss`` first)."""

    def check_resume(self, state: dict[str, Any]) -> None:
        """Raise :class:`~hwnas.errors.InvalidConfig` when a checkpoint's ``state.json`` cannot be resumed now."""

    def checkpoint_state(self) -> dict[str, Any]:
        """JSON fields stored in a checkpoint's ``state.json`` besides ``step``."""
        return {}

    def after_step(self, step: int, metrics: dict[str, float]) -> None:
        """Called on every process after step ``step`` (0-based), before any checkpoint of that step."""

    def after_checkpoint(self, folder: Path | None, done: int) -> None:
        """Called on every process after a checkpoint of ``done`` steps (``folder``: ``None`` off the main process)."""

    # ------------------------------------------------------------ the skeleton
    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    def status(self, text: str) -> None:
        """One line for ``on_status``, from the main process only."""
        if self.main and self.on_status is not None:
            self.on_status(text)

    def elapsed(self) -> float:
        """Seconds since this invocation's steps began."""
        return time.perf_counter() - self._t0

    def latest(self) -> Path | None:
        return latest_checkpoint(self.checkpoints) if self.checkpoints.is_dir() else None

    def restore(self, folder: Path | None = None) -> dict[str, Any] | None:
        """Load ``folder`` (default: the latest checkpoint) into the model and optimizer, before they are
        prepared for several processes; returns its ``state.json`` (``None``: nothing to resume)."""
        import json

        folder = folder or self.latest()
        if folder is None:
            return None
        self.check_resume(json.loads((folder / "state.json").read_text()))
        state = load_checkpoint(folder, self.model, self.optimizer)
        self.start = int(state["step"])
        return state

    def stop_if_diverged(self, step: int, losses: Sequence[float]) -> None:
        """Raise :class:`~hwnas.errors.TrainingDiverged` on every process when a loss of 0-based ``step`` is not
        finite on any process. Call it before the optimizer step, so no non-finite update reaches the weights."""
        bad = float(not all(math.isfinite(v) for v in losses))
        if self.accelerator.num_processes > 1:  # every process stops together
            import torch

            bad = float(self.accelerator.reduce(torch.tensor([bad], dtype=torch.float64,
                                                             device=self.accelerator.device), "sum").item())
        if bad:
            shown = ", ".join(f"{v:.4g}" for v in losses)
            last = self.latest()
            kept = f"{last} is the last good checkpoint" if last is not None else "no checkpoint had been written yet"
            raise TrainingDiverged(f"{self.stage}: the training loss became non-finite at step {step + 1} ({shown}); "
                                   f"stopped before updating the weights; {kept} (lower the learning rate or check "
                                   "the data)")

    def due(self, done: int) -> bool:
        """Whether a checkpoint is written after ``done`` steps."""
        return bool(self.checkpoint_every) and (done % self.checkpoint_every == 0 or done == self.steps)

    def save(self, done: int) -> None:
        self.accelerator.wait_for_everyone()
        folder = None
        if self.main:
            folder = save_checkpoint(self.checkpoints, done, self.accelerator.unwrap_model(self.model), self.optimizer,
                                     self.checkpoint_state())
        self.after_checkpoint(folder, done)
        self.accelerator.wait_for_everyone()

    def run(self) -> None:
        """Steps ``self.start`` to ``self.steps``, checkpoints and progress events."""
        self._t0 = time.perf_counter()
        for step in range(self.start, self.steps):
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(step)
            metrics = self.train_step(step)
            self.after_step(step, metrics)
            wrote = self.due(step + 1)
            if wrote:
                self.save(step + 1)
            if self.main:
                emit(self.on_progress, self.stage, step + 1, self.steps, metrics, checkpoint=wrote)
        self.wall_s = self.elapsed()
