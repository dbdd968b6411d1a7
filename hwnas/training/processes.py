"""How a training loop runs on one or several processes: ``accelerate``, or a one-process stand-in.

Started under ``torchrun`` or ``accelerate launch`` (anything that sets
``WORLD_SIZE``), every loop goes through ``accelerate``: it sets up the process
group (gloo on CPU, NCCL on CUDA), and its ``reduce`` and ``wait_for_everyone``
are the only collectives hwnas uses. One process without the ``accelerate``
package gets :class:`SingleProcess`, which has the same few methods.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import torch
from torch import nn

from hwnas.errors import InvalidConfig

__all__ = ["SingleProcess", "make_accelerator", "process_state", "resolve_precision", "world_size",
           "MIXED_PRECISION_CHOICES"]

MIXED_PRECISION_CHOICES = ("auto", "no", "bf16", "fp16")
_NEEDS_ACCELERATE = "several processes need the accelerate package: pip install 'hwnas[distributed]'"


def world_size() -> int:
    """Processes of this run, as the launcher (torchrun, accelerate launch) announced them; 1 when not launched."""
    return int(os.environ.get("WORLD_SIZE", "1"))


class SingleProcess:
    """The ``Accelerator`` methods hwnas's loops use, for one process (CPU, or one GPU with autocast)."""

    num_processes, process_index, is_main_process = 1, 0, True

    def __init__(self, precision: str = "no", device: str | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = precision
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def prepare(self, *objects):
        return tuple(o.to(self.device) if isinstance(o, nn.Module) else o for o in objects)

    def autocast(self):
        if self.precision == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.precision == "bf16" else torch.float16)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def clip_grad_norm_(self, params, max_norm: float):
        return torch.nn.utils.clip_grad_norm_(list(params), max_norm)

    def unwrap_model(self, module: nn.Module) -> nn.Module:
        return module

    def reduce(self, tensor: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return tensor.clone()

    def wait_for_everyone(self) -> None:
        pass


def make_accelerator(precision: str = "no", *, cpu: bool | None = None, single_without_launcher: bool = False):
    """An ``accelerate.Accelerator``, or :class:`SingleProcess` for one process.

    Args:
        precision: ``"no"``, ``"bf16"`` or ``"fp16"`` (see :func:`resolve_precision`).
        cpu: run on the CPU even where CUDA is available (``None``: CUDA when available).
        single_without_launcher: use :class:`SingleProcess` whenever no launcher started several
            processes, leaving accelerate's process-wide state alone (supernet training does, so that
            a distillation later in the same process may pick its own precision and device).
    """
    cpu = not torch.cuda.is_available() if cpu is None else cpu
    device = "cpu" if cpu else None
    if single_without_launcher and world_size() <= 1:
        return SingleProcess(precision, device)
    try:
        from accelerate import Accelerator
    except ImportError:
        if world_size() > 1:
            raise InvalidConfig(_NEEDS_ACCELERATE) from None
        if precision == "fp16":
            raise InvalidConfig("mixed_precision='fp16' needs the accelerate package (gradient scaling); use bf16 or no") from None
        return SingleProcess(precision, device)
    return Accelerator(mixed_precision=precision, cpu=cpu)


def process_state() -> tuple[bool, Callable[[], None]]:
    """``(is_main_process, wait_for_everyone)`` of this process (one process: ``(True, no-op)``).

    Under a launcher only the main process writes files; the others wait at the same barriers.
    """
    if world_size() <= 1:
        return True, lambda: None
    try:
        from accelerate import PartialState
    except ImportError:
        raise InvalidConfig(_NEEDS_ACCELERATE) from None
    # cpu=True: without it accelerate does not set up several CPU processes
    state = PartialState(cpu=not torch.cuda.is_available())
    return state.is_main_process, state.wait_for_everyone


def resolve_precision(choice: str) -> str:
    """``"auto"``: bf16 (or fp16) on CUDA, none on CPU, where bf16 autocast is usually slower."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"
