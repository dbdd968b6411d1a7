"""``cuda``: PyTorch eager on an NVIDIA GPU, optionally replayed as a CUDA graph.

Timing: a block is bracketed by two CUDA events recorded on the current stream
after a full device synchronise, so the time is the GPU's own view of the
block (kernel launch gaps included, host clock jitter excluded). Inputs and
weights live on the GPU before timing starts: no host-device copy is timed.

With ``cuda_graphs=True`` the forward pass is captured once into a
``torch.cuda.CUDAGraph`` (after warm-up calls on the capturing stream) and each
call replays it; capture time goes to ``export_s``. Graph replay removes the
per-kernel launch cost of eager PyTorch, which dominates small encoders.

Also holds the GPU helpers shared by ``onnxruntime-cuda`` and ``tensorrt``:
:func:`gpu_fingerprint` and :class:`CudaEventTimer`.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from importlib import metadata
from importlib.util import find_spec
from typing import Any

from hwnas.devices._models import build_encoder, example_inputs, import_runtime
from hwnas.devices.base import Device, Runner, Shape
from hwnas.devices.fingerprint import host_fingerprint
from hwnas.errors import DeviceUnavailable, InvalidConfig, ProfilingError, check_int
from hwnas.space import Architecture

__all__ = ["CUDADevice", "CudaEventTimer", "gpu_fingerprint", "torch_cuda_status", "nvidia_gpu_present"]


def nvidia_gpu_present() -> bool:
    """Whether the NVIDIA kernel driver exposes at least one GPU (cheap, imports nothing)."""
    try:
        return bool(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return os.path.exists("/dev/nvidia0")


def _torch_has_cuda_library() -> tuple[bool, str]:
    """Whether the installed torch ships its CUDA library, found without importing torch.

    Returns ``(has_cuda, version)``; ``version`` is the distribution's version string.
    """
    spec = find_spec("torch")
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        version = "?"
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        if glob.glob(os.path.join(location, "lib", "libtorch_cuda*")):
            return True, version
    return False, version


def torch_cuda_status() -> tuple[bool, str]:
    """``(True, "")`` if torch can use a CUDA GPU here, else ``(False, reason)``. Never raises.

    Cheap on machines without a GPU: a CPU-only torch or a host without the
    NVIDIA driver is recognised from files, without importing torch.
    """
    if find_spec("torch") is None:
        return False, "torch is not installed"
    has_cuda, version = _torch_has_cuda_library()
    if not has_cuda:
        return False, f"torch {version} was built without CUDA"
    if not nvidia_gpu_present():
        return False, f"no NVIDIA GPU found on this host (no NVIDIA driver in /proc/driver/nvidia; torch {version})"
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 (deliberate: a broken torch install must not crash `hwnas devices`)
        return False, f"torch failed to import: {type(exc).__name__}: {exc}"
    if torch.version.cuda is None:
        return False, f"torch {torch.__version__} was built without CUDA"
    try:
        count = torch.cuda.device_count()
    except Exception as exc:  # noqa: BLE001 (deliberate: an availability probe never raises)
        return False, f"torch could not query CUDA devices: {type(exc).__name__}: {exc}"
    if count == 0:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        extra = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        return False, f"no CUDA GPU is visible to torch {torch.__version__} (CUDA {torch.version.cuda}){extra}"
    return True, ""


class CudaEventTimer:
    """Times a block of calls with CUDA events on a stream of ``device``.

    ``time(fn, number)`` synchronises the device, records a start event, calls
    ``fn`` ``number`` times, records an end event and waits for it. Returns
    seconds (CUDA events report milliseconds with ~0.5 us resolution).

    Args:
        stream: the ``torch.cuda.Stream`` the work is issued on; ``None`` uses
            the device's current stream at each call.
    """

    def __init__(self, device: Any, stream: Any = None) -> None:
        import torch

        self._torch = torch
        self.device = device
        self.stream = stream
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def time(self, fn: Any, number: int) -> float:
        torch = self._torch
        torch.cuda.synchronize(self.device)
        stream = self.stream if self.stream is not None else torch.cuda.current_stream(self.device)
        self._start.record(stream)
        for _ in range(number):
            fn()
        self._end.record(stream)
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1e3


def _nvml_info(index: int, uuid: str | None) -> dict[str, Any]:
    """Driver, clocks and power limit through NVML (package ``nvidia-ml-py``), when installed."""
    if find_spec("pynvml") is None:
        return {}
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 (deliberate: NVML is informative only; never fail a fingerprint)
        return {"nvml": f"unavailable: {type(exc).__name__}"}
    out: dict[str, Any] = {}
    try:
        handle = pynvml.nvmlDeviceGetHandleByUUID(uuid) if uuid else pynvml.nvmlDeviceGetHandleByIndex(index)

        def read(key: str, fn: Any, *args: Any) -> None:
            try:
                value = fn(*args)
                out[key] = value.decode() if isinstance(value, bytes) else value
            except Exception:  # noqa: BLE001, S110 (deliberate: a field this GPU or driver does not report)
                pass

        read("driver", pynvml.nvmlSystemGetDriverVersion)
        read("sm_clock_mhz", pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM)
        read("mem_clock_mhz", pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM)
        read("max_sm_clock_mhz", pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_SM)
        read("max_mem_clock_mhz", pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_MEM)
        read("app_sm_clock_mhz", pynvml.nvmlDeviceGetApplicationsClock, handle, pynvml.NVML_CLOCK_SM)
        read("power_limit_mw", pynvml.nvmlDeviceGetPowerManagementLimit, handle)
        read("persistence_mode", pynvml.nvmlDeviceGetPersistenceMode, handle)
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001, S110 (deliberate: a failed shutdown leaves nothing to clean up)
            pass
    return out


_SMI_FIELDS = ("driver_version", "clocks.sm", "clocks.mem", "clocks.max.sm", "clocks.max.mem", "power.limit", "persistence_mode")


def _nvidia_smi_info(index: int, uuid: str | None) -> dict[str, Any]:
    """The same facts as :func:`_nvml_info` from ``nvidia-smi``, when NVML's Python binding is absent."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    try:
        result = subprocess.run(
            [smi, f"--query-gpu={','.join(_SMI_FIELDS)}", "--format=csv,noheader,nounits", "-i", uuid or str(index)],
            capture_output=True, text=True, timeout=10, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [v.strip() for v in result.stdout.strip().splitlines()[0].split(",")] if result.stdout.strip() else []
    keys = ("driver", "sm_clock_mhz", "mem_clock_mhz", "max_sm_clock_mhz", "max_mem_clock_mhz", "power_limit_w", "persistence_mode")
    if len(values) != len(keys):  # an answer of another shape: its fields cannot be matched to the names
        return {}
    return {k: v for k, v in zip(keys, values, strict=True) if v and v != "[N/A]"}


def gpu_fingerprint(index: int = 0) -> dict[str, Any]:
    """Name, memory, compute capability, CUDA/cuDNN versions, driver and clocks of GPU ``index``.

    Uses torch's CUDA properties when torch has CUDA, then NVML (``pip install
    nvidia-ml-py``) or ``nvidia-smi`` for the driver and clocks. Fields that
    cannot be read are left out rather than guessed.
    """
    fp: dict[str, Any] = {"gpu_index": index, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    uuid = None
    ok, _ = torch_cuda_status()
    if ok:
        import torch

        props = torch.cuda.get_device_properties(index)
        fp.update(
            gpu_name=props.name, gpu_memory_bytes=int(props.total_memory),
            compute_capability=f"{props.major}.{props.minor}", multiprocessors=int(props.multi_processor_count),
            cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
            tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32),
        )
        raw_uuid = getattr(props, "uuid", None)
        if raw_uuid is not None:
            uuid = f"GPU-{raw_uuid}"
            fp["gpu_uuid"] = uuid
    extra = _nvml_info(index, uuid) or _nvidia_smi_info(index, uuid)
    fp.update(extra)
    return fp


class _TorchCUDARunner(Runner):
    """``model`` and ``inputs`` (``batch x seq_len`` int64) already on GPU ``device``."""

    def __init__(self, model: Any, inputs: tuple[Any, Any], device: Any, build_s: float, cuda_graphs: bool) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.device = device
        self.input_ids, self.attention_mask = inputs
        self.build_s = build_s
        self.graph = None
        self._static_out = None
        self._timer = CudaEventTimer(device)
        if cuda_graphs:
            start = time.perf_counter()
            self._capture()
            self.export_s = time.perf_counter() - start

    def _forward(self):
        return self.model(input_ids=self.input_ids, attention_mask=self.attention_mask).last_hidden_state

    def _capture(self) -> None:
        torch = self._torch
        # Warm-up and capture on the same side stream: lazily created library handles
        # (cuBLAS workspaces, autotuned kernels) must exist before capture starts.
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(stream):
            for _ in range(3):
                self._forward()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        # transformers notices stream capture and builds the attention mask as tensors
        # instead of checking it on the host (a host sync would abort the capture), so
        # the captured graph always applies the mask, as it must for padded batches.
        try:
            with torch.inference_mode(), torch.cuda.graph(graph, stream=stream):
                self._static_out = self._forward()
        except RuntimeError as exc:
            raise ProfilingError(f"CUDA graph capture failed ({exc}); profile without cuda_graphs") from exc
        torch.cuda.synchronize(self.device)
        self.graph = graph

    def run(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        with self._torch.inference_mode():
            self._forward()

    def synchronize(self) -> None:
        self._torch.cuda.synchronize(self.device)

    def time_block(self, number: int) -> float:
        return self._timer.time(self.run, number)

    def output(self):
        """The last hidden state, ``batch x seq_len x hidden``, on the host (for verification)."""
        if self.graph is not None:
            self.graph.replay()
            out = self._static_out
        else:
            with self._torch.inference_mode():
                out = self._forward()
        return out.float().cpu()

    def close(self) -> None:
        self.graph = None
        self._static_out = None
        self.model = None
        self.input_ids = self.attention_mask = None
        self._torch.cuda.empty_cache()


class _ExportedCUDARunner(_TorchCUDARunner):
    """A saved Hugging Face classifier on the GPU (its forward returns logits)."""

    def __init__(self, model: Any, feeds: dict[str, Any], device: Any, build_s: float, cuda_graphs: bool) -> None:
        self.token_type_ids = feeds["token_type_ids"]
        super().__init__(model, (feeds["input_ids"], feeds["attention_mask"]), device, build_s, cuda_graphs)

    def _forward(self):
        return self.model(input_ids=self.input_ids, attention_mask=self.attention_mask,
                          token_type_ids=self.token_type_ids).logits

    def close(self) -> None:
        self.token_type_ids = None
        super().close()


class CUDADevice(Device):
    """PyTorch eager on an NVIDIA GPU: ``fp32``, ``fp16`` or ``bf16``.

    Args:
        device_index: which visible GPU (``cuda:<index>``).
        cuda_graphs: capture the forward pass once and replay it as a CUDA graph.
        **kwargs: see :class:`~hwnas.devices.base.Device` (``threads`` pins host
            threads, which only matter for kernel launches here).
    """

    name = "cuda"
    description = "PyTorch on an NVIDIA GPU (CUDA events, optional CUDA graphs)"
    install_hint = "install a CUDA build of torch on a machine with an NVIDIA GPU"
    dtypes = ("fp32", "fp16", "bf16")

    def __init__(self, *, device_index: int = 0, cuda_graphs: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_int("device_index", device_index, 0)
        if not isinstance(cuda_graphs, bool):
            raise InvalidConfig(f"cuda_graphs must be True or False; got {cuda_graphs!r}")
        self.device_index = device_index
        self.cuda_graphs = cuda_graphs

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if find_spec("transformers") is None:
            return False, "transformers is not installed: pip install transformers"
        return torch_cuda_status()

    def _device(self):
        import torch

        count = torch.cuda.device_count()
        if self.device_index >= count:
            raise DeviceUnavailable(f"device_index={self.device_index} but only {count} CUDA GPU(s) are visible")
        major, minor = torch.cuda.get_device_capability(self.device_index)
        if self.dtype == "bf16" and major < 8:  # bfloat16 tensor cores arrived with Ampere (8.0)
            name = torch.cuda.get_device_name(self.device_index)
            raise DeviceUnavailable(
                f"dtype 'bf16' needs compute capability >= 8.0; {name} has {major}.{minor}: use fp16 or fp32")
        return torch.device("cuda", self.device_index)

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out.update(device_index=self.device_index, cuda_graphs=self.cuda_graphs)
        return out

    def fingerprint(self) -> dict[str, Any]:
        fp = host_fingerprint(self.threads, ("torch", "transformers", "nvidia-ml-py"))
        fp.update(gpu_fingerprint(self.device_index))
        return fp

    def prepare(self, arch: Architecture, shape: Shape) -> Runner:
        self.check_shape(shape)
        device = self._device()
        import_runtime()
        start = time.perf_counter()
        model = build_encoder(arch, vocab_size=self.vocab_size, max_positions=self.max_positions,
                              attn_implementation=self.attn_implementation, dtype=self.dtype, seed=self.seed)
        model = model.to(device)
        inputs = example_inputs(shape.batch_size, shape.seq_len, vocab_size=self.vocab_size, device=device, seed=self.seed)
        import torch

        torch.cuda.synchronize(device)
        return _TorchCUDARunner(model, inputs, device, time.perf_counter() - start, self.cuda_graphs)

    def exported_kind(self) -> str | None:
        return "exported Hugging Face model (PyTorch, CUDA)"

    def prepare_exported(self, folder: Any, shape: Shape) -> Runner:
        """The saved Hugging Face classifier in ``folder`` on the GPU, in this device's dtype."""
        from hwnas.devices.cpu import exported_feeds, load_exported_classifier

        self.check_shape(shape)
        device = self._device()
        import_runtime()
        start = time.perf_counter()
        model = load_exported_classifier(folder, attn_implementation=self.attn_implementation, dtype=self.dtype,
                                         device=device)
        feeds = exported_feeds(model.config.vocab_size, shape, seed=self.seed, device=device)
        import torch

        torch.cuda.synchronize(device)
        return _ExportedCUDARunner(model, feeds, device, time.perf_counter() - start, self.cuda_graphs)
