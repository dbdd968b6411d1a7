"""``tpu`` and ``xla-cpu``: PyTorch/XLA (torch-xla) through the PJRT runtime.

Both devices run the same code path; only the PJRT device type differs
(``PJRT_DEVICE=TPU`` or ``PJRT_DEVICE=CPU``). ``xla-cpu`` exists so that the XLA
path can be developed and tested in CI on any machine where torch-xla installs.

How a call is measured (``mode``):

* ``"dynamo"`` (default): the encoder is compiled with
  ``torch.compile(backend="openxla")``; a call runs the cached XLA executable
  and waits for the device (``xm.wait_device_ops``). This is how torch-xla
  serves inference: the figure is the compiled graph plus a small dispatch cost.
* ``"lazy"``: the model runs as lazy XLA tensors; a call traces the forward
  pass in Python, launches the graph (``torch_xla.sync``) and waits for the
  device, so the figure includes per-call tracing on the host (which for small
  encoders costs more than the graph itself).
* Either way the first call compiles; it happens in :meth:`prepare` and is
  recorded as ``export_s``, never as latency.
* XLA compiles a new graph whenever shapes or the traced program change. The
  runner reads torch-xla's ``CompileTime`` metric before and after every timed
  block; if it rose, :meth:`after_block` returns a warning that ends up in the
  measurement's ``warnings``, so a recompilation is reported, not silently
  averaged in.

The PJRT device type is fixed for the life of a process: once the XLA runtime
has started on the CPU, the same process cannot switch to a TPU (and the other
way round); :meth:`XLADevice.prepare` refuses with a clear message.
"""

from __future__ import annotations

import glob
import os
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar

from hwnas.devices._models import build_encoder, encoder_module, example_inputs, import_runtime
from hwnas.devices.base import Device, Runner, Shape
from hwnas.devices.fingerprint import host_fingerprint
from hwnas.errors import DeviceUnavailable, InvalidConfig, ProfilingError
from hwnas.space import Architecture

__all__ = ["XLADevice", "TPUDevice", "XLACPUDevice", "tpu_chips", "compile_count"]

# PCI ids of TPU chips (Google's vendor id; device ids of TPU v2/v3, v4, v5e,
# v5p, v6e and later). Reading /sys is cheap and needs no torch-xla import, so
# `hwnas devices` can answer "is there a TPU" in microseconds.
_GOOGLE_PCI_VENDOR = "0x1ae0"
_TPU_PCI_DEVICES = frozenset({"0x0027", "0x005e", "0x0062", "0x0063", "0x006f", "0x0056", "0x0076"})
_PACKAGES = (("torch", "torch"), ("transformers", "transformers"), ("torch_xla", "torch-xla"))


def tpu_chips(sysfs: str = "/sys/bus/pci/devices") -> int:
    """Number of TPU chips attached to this host through PCI (0 when none or unreadable)."""
    count = 0
    for vendor_file in glob.glob(os.path.join(sysfs, "*", "vendor")):
        try:
            vendor = Path(vendor_file).read_text().strip()
            if vendor != _GOOGLE_PCI_VENDOR:
                continue
            device = (Path(vendor_file).parent / "device").read_text().strip()
        except OSError:
            continue
        if device in _TPU_PCI_DEVICES:
            count += 1
    return count


def compile_count() -> int:
    """How many XLA graphs this process has compiled so far (torch-xla's ``CompileTime`` samples)."""
    import torch_xla.debug.metrics as met

    data = met.metric_data("CompileTime")
    return int(data[0]) if data else 0


def _allow_many_compiled_models() -> None:
    """Let dynamo keep one compiled graph per profiled model, and fail rather than fall back.

    Every runner compiles the same wrapper code for a different model, and dynamo
    caps the graphs kept per code object (8 by default) and then silently runs
    the code uncompiled. A profile of hundreds of architectures needs more, and a
    silent fallback would change what is measured, so the cap is raised and
    hitting it is made an error. This changes torch's process-wide dynamo settings.
    """
    import torch._dynamo

    config = torch._dynamo.config
    # Names changed across torch releases (cache_size_limit became recompile_limit);
    # set the ones this torch has.
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 100_000))
    if hasattr(config, "fail_on_recompile_limit_hit"):
        config.fail_on_recompile_limit_hit = True


def _pjrt_started() -> bool:
    import torch_xla

    try:
        return bool(torch_xla._XLAC._xla_runtime_is_initialized())
    except AttributeError:  # older torch-xla without the query: assume not started
        return False


class _XLARunner(Runner):
    """One architecture at one shape on an XLA device.

    ``inputs`` are ``batch_size x seq_len`` int64 tensors already on the device.
    """

    def __init__(self, model: Any, inputs: tuple[Any, Any], build_s: float, device_type: str, mode: str) -> None:
        import torch
        import torch_xla
        import torch_xla.core.xla_model as xm

        self._torch = torch
        self._torch_xla = torch_xla
        self._xm = xm
        self.model = model
        self.mode = mode
        # dynamo compiles a positional-argument wrapper (what torch.compile traces best);
        # lazy mode calls the transformers model directly.
        self._compiled = None
        if mode == "dynamo":
            _allow_many_compiled_models()
            # Static shapes: XLA compiles one executable per shape anyway, and dynamo's
            # automatic dynamic shapes would otherwise trace symbolic graphs after the second shape.
            # fullgraph: a graph break would leave part of the model as pending lazy work
            # outside the executable; refuse it instead.
            self._compiled = torch.compile(encoder_module(model), backend="openxla", dynamic=False, fullgraph=True)
        self.input_ids, self.attention_mask = inputs
        self.build_s = build_s
        self.device_type = device_type
        self._last = None
        self.compiles_in_last_block = 0
        # The first call traces and compiles the graph; a second call settles anything
        # compiled lazily after the first (dynamo guards). Both are export_s, not latency.
        start = time.perf_counter()
        try:
            self.run()
            self.run()
        except Exception as exc:  # dynamo and XLA raise many exception types
            if mode != "dynamo":
                raise
            raise ProfilingError(f"torch.compile(backend='openxla') failed: {type(exc).__name__}: "
                                 f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}; "
                                 "try mode='lazy'") from exc
        self.export_s = time.perf_counter() - start

    def run(self) -> None:
        with self._torch.no_grad():
            if self._compiled is not None:
                # fullgraph compilation: the output is the executable's device data, nothing is
                # left pending, so no sync() is needed (it would add ~0.3 ms of host work).
                self._last = self._compiled(self.input_ids, self.attention_mask)
            else:
                # Keep a reference to the output until the graph has run: a lazy tensor
                # that is dropped before sync() is never computed at all.
                self._last = self.model(input_ids=self.input_ids, attention_mask=self.attention_mask).last_hidden_state
                self._torch_xla.sync()
        self._xm.wait_device_ops()

    def synchronize(self) -> None:
        self._xm.wait_device_ops()

    def time_block(self, number: int) -> float:
        # The compile counter is read outside the timed region and attributed to
        # this runner only, so one runner's recompilation never flags another's block.
        before = compile_count()
        seconds = super().time_block(number)
        self.compiles_in_last_block = compile_count() - before
        return seconds

    def after_block(self) -> str | None:
        if self.compiles_in_last_block > 0:
            return (f"XLA compiled {self.compiles_in_last_block} graph(s) inside a timed block "
                    "(the graph changed between calls); that block includes compilation time")
        return None

    def output(self):
        """The last hidden state, ``batch x seq_len x hidden``, copied to the host (for verification)."""
        self.run()
        return self._last.cpu()

    def close(self) -> None:
        self.model = None
        self._compiled = None
        self._last = None
        self.input_ids = self.attention_mask = None


class XLADevice(Device):
    """PyTorch/XLA on a PJRT device; subclasses fix :attr:`pjrt_device`.

    Args:
        mode: ``"dynamo"`` (``torch.compile(backend="openxla")``, default) or
            ``"lazy"`` (lazy tensors, traced on every call); see the module docstring.
        **kwargs: see :class:`~hwnas.devices.base.Device`.

    Supports ``fp32`` and ``bf16`` (weights and activations in bfloat16, the
    TPU's native type). ``threads`` pins torch's host threads (model building,
    tracing); XLA's own CPU client sizes its thread pool itself.
    """

    pjrt_device: ClassVar[str]
    install_hint = "pip install 'hwnas[tpu]' (torch-xla, whose torch version must match exactly)"
    dtypes = ("fp32", "bf16")
    modes: ClassVar[tuple[str, ...]] = ("dynamo", "lazy")

    def __init__(self, *, mode: str = "dynamo", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in self.modes:
            raise InvalidConfig(f"mode must be one of {', '.join(self.modes)}; got {mode!r}")
        self.mode = mode

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out["mode"] = self.mode
        return out

    @classmethod
    def _select_runtime(cls) -> None:
        """Point PJRT at :attr:`pjrt_device`, or refuse if this process already uses another."""
        current = os.environ.get("PJRT_DEVICE")
        if current and current.split("_")[0].upper() != cls.pjrt_device and _pjrt_started():
            raise DeviceUnavailable(
                f"device {cls.name!r} needs PJRT_DEVICE={cls.pjrt_device}, but this process already started "
                f"the XLA runtime with PJRT_DEVICE={current}; use a separate process"
            )
        os.environ["PJRT_DEVICE"] = cls.pjrt_device

    def xla_device(self):
        """The ``torch.device`` of the first XLA device of this process."""
        self._select_runtime()
        import torch_xla

        return torch_xla.device()

    def fingerprint(self) -> dict[str, Any]:
        import torch_xla
        import torch_xla.core.xla_model as xm
        import torch_xla.runtime as xr

        fp = host_fingerprint(self.threads, ("torch", "transformers", "torch-xla", "libtpu"))
        device = self.xla_device()
        fp["pjrt_device"] = xr.device_type()
        fp["xla_hardware"] = xm.xla_device_hw(device)
        fp["xla_devices"] = list(torch_xla.real_devices())
        try:
            attributes = xr.global_runtime_device_attributes()
            fp["xla_device_attributes"] = {k: str(v) for k, v in (attributes[0] if attributes else {}).items()}
        except Exception as exc:  # noqa: BLE001 (deliberate: attributes are informative only; never fail a measurement)
            fp["xla_device_attributes"] = f"unreadable: {type(exc).__name__}"
        fp["xla_flags"] = os.environ.get("XLA_FLAGS", "")
        return fp

    def prepare(self, arch: Architecture, shape: Shape) -> Runner:
        self.check_shape(shape)
        device = self.xla_device()
        import_runtime()
        start = time.perf_counter()
        model = build_encoder(arch, vocab_size=self.vocab_size, max_positions=self.max_positions,
                              attn_implementation=self.attn_implementation, dtype=self.dtype, seed=self.seed)
        model = model.to(device)
        inputs = example_inputs(shape.batch_size, shape.seq_len, vocab_size=self.vocab_size,
                                device=device, seed=self.seed)
        build_s = time.perf_counter() - start
        return _XLARunner(model, inputs, build_s, self.pjrt_device, self.mode)


class TPUDevice(XLADevice):
    """torch-xla on a Cloud TPU (``PJRT_DEVICE=TPU``); refuses to start without a TPU chip."""

    name = "tpu"
    description = "PyTorch/XLA on a TPU (PJRT_DEVICE=TPU)"
    pjrt_device = "TPU"

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        missing = cls.missing_package(*_PACKAGES)
        if missing:
            return False, missing
        if tpu_chips() == 0:
            return False, "no TPU chip found on this host (no Google TPU on the PCI bus); run on a TPU VM, or use 'xla-cpu' for the same path on the CPU"
        # a dotted find_spec would import torch_xla itself; libtpu is a top-level package
        if find_spec("libtpu") is None:
            return False, "a TPU is attached but libtpu is not installed: pip install 'torch-xla[tpu]'"
        return True, ""


class XLACPUDevice(XLADevice):
    """torch-xla's CPU client (``PJRT_DEVICE=CPU``): the TPU code path on any machine."""

    name = "xla-cpu"
    description = "PyTorch/XLA on the CPU (PJRT_DEVICE=CPU), for development and CI"
    pjrt_device = "CPU"
    host_bound = True

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        missing = cls.missing_package(*_PACKAGES)
        return missing is None, missing or ""
