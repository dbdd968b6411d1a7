"""The device contract: what every backend implements.

A :class:`Device` turns an (architecture, input shape) pair into a
:class:`Runner`, an object whose :meth:`Runner.run` executes one inference and
whose :meth:`Runner.synchronize` waits until the device has finished. All timing
rules live in :mod:`hwnas.devices.timing`; backends never read a clock for
latency themselves (they only record build and export times).
"""

from __future__ import annotations

import inspect
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from hwnas.errors import InvalidConfig, ProfilingError, check_int
from hwnas.space import Architecture

__all__ = ["Shape", "Runner", "Device", "DTYPES", "verified"]

#: Every dtype name hwnas knows; each device lists the subset it supports.
DTYPES: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True, order=True)
class Shape:
    """An input shape: ``batch_size`` sequences of ``seq_len`` tokens."""

    batch_size: int
    seq_len: int

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len"):
            value = getattr(self, name)
            check_int(name, value)

    def __str__(self) -> str:
        return f"batch_size={self.batch_size},seq_len={self.seq_len}"


class Runner(ABC):
    """One architecture at one shape, built and ready on a device.

    Attributes:
        build_s: seconds spent constructing the model (host side).
        export_s: seconds spent exporting or compiling (ONNX export and session
            creation, engine build, first XLA compilation); 0 if none.
    """

    build_s: float = 0.0
    export_s: float = 0.0

    @abstractmethod
    def run(self) -> None:
        """Execute one inference. May return before the device has finished."""

    def synchronize(self) -> None:
        """Block until all work issued by :meth:`run` has finished (no-op on the CPU)."""

    def time_block(self, number: int) -> float:
        """Seconds taken by ``number`` back-to-back calls to :meth:`run`.

        The device is synchronised before the clock is read at both ends.
        Backends with device-side timers (CUDA events) override this.
        """
        self.synchronize()
        start = time.perf_counter()
        for _ in range(number):
            self.run()
        self.synchronize()
        return time.perf_counter() - start

    def after_block(self) -> str | None:
        """Called after every timed block; returns a warning if the block is suspect.

        The XLA backend uses it to detect a recompilation inside the timed loop.
        """
        return None

    def close(self) -> None:
        """Free the model and any device memory."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Device(ABC):
    """A backend that can build and run BERT-like encoders.

    Subclasses set :attr:`name`, implement :meth:`is_available`,
    :meth:`fingerprint` and :meth:`prepare`, and register themselves in
    :mod:`hwnas.devices.registry` (one line).

    Args:
        threads: intra-op threads for host-side compute; ``None`` leaves the
            library default. Pinned only while measuring and restored after.
        dtype: one of :attr:`dtypes`.
        vocab_size, max_positions: embedding sizes of the profiled encoder.
        attn_implementation: ``"sdpa"`` or ``"eager"`` (transformers' attention kernels).
        seed: seeds the random weights and inputs, so runs are repeatable.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: What to install when :meth:`is_available` says no.
    install_hint: ClassVar[str] = ""
    dtypes: ClassVar[tuple[str, ...]] = ("fp32",)
    #: True when, with one thread, all the work of :meth:`Runner.run` happens in the
    #: calling thread, so the ``thread_cpu`` clock measures it (host backends only).
    thread_clock: ClassVar[bool] = False
    #: True when the device is the host itself (CPU backends): a predictor fitted
    #: on another host does not describe this one, so fingerprints are compared.
    host_bound: ClassVar[bool] = False

    def __init__(
        self, *, threads: int | None = 1, dtype: str = "fp32", vocab_size: int = 30522, max_positions: int = 512,
        attn_implementation: str = "sdpa", seed: int = 0,
    ) -> None:
        check_int("threads", threads, none_ok=True)
        if dtype not in self.dtypes:
            raise InvalidConfig(
                f"dtype {dtype!r} is not supported by device {self.name!r}; supported: {', '.join(self.dtypes)}"
            )
        if attn_implementation not in ("sdpa", "eager"):
            raise InvalidConfig(f"attn_implementation must be 'sdpa' or 'eager'; got {attn_implementation!r}")
        for label, value in (("vocab_size", vocab_size), ("max_positions", max_positions)):
            check_int(label, value)
        self.threads = threads
        self.dtype = dtype
        self.vocab_size = vocab_size
        self.max_positions = max_positions
        self.attn_implementation = attn_implementation
        self.seed = seed

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The keyword options this backend adds to the shared ones (``hwnas profile --device-option KEY=VALUE``).

        Read from the constructor's keyword-only parameters, so a backend declares an option by accepting it;
        :meth:`settings` must record each under the same name (that is how a predictor remembers them).
        """
        shared = set(inspect.signature(Device.__init__).parameters)
        params = inspect.signature(cls.__init__).parameters.values()
        return tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in shared)

    def options(self) -> dict[str, Any]:
        """The values of this device's own options (:meth:`option_names`), as :meth:`settings` records them."""
        settings = self.settings()
        return {k: settings[k] for k in self.option_names() if k in settings}

    @classmethod
    def missing_package(cls, *modules: tuple[str, str]) -> str | None:
        """``"PACKAGE is not installed: INSTALL_HINT"`` for the first ``(module, package)`` not found, else ``None``."""
        from importlib.util import find_spec

        return next((f"{p} is not installed: {cls.install_hint}" for m, p in modules if find_spec(m) is None), None)

    # ----------------------------------------------------------- contract
    @classmethod
    @abstractmethod
    def is_available(cls) -> tuple[bool, str]:
        """``(True, "")`` if the device can run here, else ``(False, reason)``.

        Must be cheap and must not raise: it is called by ``hwnas devices``.
        """

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the hardware and software measured (recorded with every sample)."""

    @abstractmethod
    def prepare(self, arch: Architecture, shape: Shape) -> Runner:
        """Build ``arch`` for inputs of ``shape`` and return a ready runner."""

    # ------------------------------------------------------- deployment
    def exported_kind(self) -> str | None:
        """What :meth:`prepare_exported` runs from an exported student folder, or ``None`` if it cannot.

        An exported student (``hwnas distill``) is a folder with the Hugging Face
        model (``save_pretrained``) and ``model.onnx``; a device that can run one of
        them as deployed says which (e.g. ``"exported model.onnx"``).
        """
        return None

    def prepare_exported(self, folder: Any, shape: Shape) -> Runner:
        """A runner of the exported classifier in ``folder`` for inputs of ``shape``.

        Only for devices whose :meth:`exported_kind` is not ``None``.
        """
        raise InvalidConfig(f"device {self.name!r} cannot run an exported student; its encoder is measured instead")

    # ------------------------------------------------------------ helpers
    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Pin host threads while measuring; restores the previous setting on exit."""
        if self.threads is None:
            yield
            return
        import torch

        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def settings(self) -> dict[str, Any]:
        """The settings that change what is measured; stored with every sample."""
        return {
            "threads": self.threads, "dtype": self.dtype, "vocab_size": self.vocab_size,
            "max_positions": self.max_positions, "attn_implementation": self.attn_implementation,
        }

    def check_shape(self, shape: Shape) -> None:
        if shape.seq_len > self.max_positions:
            raise InvalidConfig(
                f"seq_len={shape.seq_len} exceeds max_positions={self.max_positions} of the profiled encoder"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threads={self.threads}, dtype={self.dtype!r})"


def verified(runner: Runner, reference: Any, atol: float, what: str) -> Runner:
    """``runner``, once its first output (``runner.output()``) is within ``atol`` of ``reference``, PyTorch's
    fp32 output; it records ``max_abs_diff``. Otherwise it is closed and refused with a :class:`ProfilingError`."""
    import numpy as np

    diff = float(np.max(np.abs(np.asarray(runner.output()) - reference)))
    if not diff <= atol:
        runner.close()
        raise ProfilingError(f"{what} differs from PyTorch by {diff:.3g} (> {atol})")
    runner.max_abs_diff = diff
    return runner
