"""``tensorrt``: NVIDIA TensorRT engines built from the ONNX export.

For each (architecture, shape):

1. the encoder is exported to ONNX with dynamic batch and sequence axes
   (:func:`export_for_tensorrt`); for ``fp16`` the graph itself is converted to
   fp16 (inputs stay int64, the output stays fp32). Precision therefore lives in
   the graph and the network is built *strongly typed*: the form TensorRT 11
   requires (its FP16 builder flag is gone) and TensorRT 10 accepts;
2. the ONNX bytes are parsed with ``trt.OnnxParser`` into a network and an
   engine is built with ``Builder.build_serialized_network`` and one
   optimisation profile whose min = opt = max is the shape asked, so TensorRT
   tunes its kernels for exactly what is measured;
3. the engine is deserialised, input and output buffers are allocated on the
   GPU (torch CUDA tensors), their addresses bound with ``set_tensor_address``,
   and each call is one ``execute_async_v3`` on a dedicated CUDA stream.

Export, conversion and engine build are recorded as ``export_s``. Timing uses
CUDA events on the engine's stream after a synchronise. The output of the
first run is checked against PyTorch (:data:`ATOL_FP32`, :data:`ATOL_FP16`).

Needs the ``tensorrt`` package (NVIDIA's wheels; they install only next to an
NVIDIA driver), a CUDA build of torch (buffers, stream, events), ``onnx`` for
the export and, for ``fp16``, ``onnxruntime`` (its fp16 graph converter).
"""

from __future__ import annotations

import time
from importlib.util import find_spec
from typing import Any

from hwnas.devices._models import build_encoder, encoder_module, example_inputs, import_runtime
from hwnas.devices.base import Device, Runner, Shape, verified
from hwnas.devices.cuda import CudaEventTimer, gpu_fingerprint, torch_cuda_status
from hwnas.devices.fingerprint import host_fingerprint
from hwnas.errors import DeviceUnavailable, InvalidConfig, ProfilingError, check_int
from hwnas.space import Architecture

__all__ = [
    "TensorRTDevice", "export_for_tensorrt", "profile_shapes", "build_engine", "INPUT_NAMES", "OUTPUT_NAMES",
    "ATOL_FP32", "ATOL_FP16",
]

INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAMES = ["last_hidden_state"]
#: Largest absolute output difference from PyTorch (CPU, fp32) accepted for an engine.
ATOL_FP32 = 1e-2
ATOL_FP16 = 5e-2


def profile_shapes(shape: Shape) -> dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]:
    """The optimisation profile for ``shape``: input name -> (min, opt, max) dimensions.

    All three are the measured shape: the engine is built for one shape only,
    which is what a latency table of fixed shapes needs and lets TensorRT pick
    kernels for exactly that shape.
    """
    dims = (shape.batch_size, shape.seq_len)
    return {name: (dims, dims, dims) for name in INPUT_NAMES}


def export_for_tensorrt(
    arch: Architecture, shape: Shape, *, dtype: str = "fp32", vocab_size: int = 30522, max_positions: int = 512,
    attn_implementation: str = "sdpa", seed: int = 0,
) -> tuple[bytes, dict[str, Any], Any]:
    """Export ``arch`` to ONNX with dynamic ``batch`` and ``sequence`` axes.

    Returns:
        ``(onnx_bytes, feeds, reference)``: the serialised model (fp16 compute
        when ``dtype="fp16"``, int64 inputs and fp32 output either way), the
        example inputs as numpy int64 arrays ``batch x seq_len`` keyed by input
        name, and PyTorch's fp32 output for them, ``batch x seq_len x hidden``.
    """
    if dtype not in ("fp32", "fp16"):
        raise InvalidConfig(f"dtype must be 'fp32' or 'fp16' for a TensorRT export; got {dtype!r}")
    import torch

    from hwnas.devices.onnxruntime import export_onnx

    import_runtime()
    model = build_encoder(arch, vocab_size=vocab_size, max_positions=max_positions,
                          attn_implementation=attn_implementation, seed=seed)
    inputs = example_inputs(shape.batch_size, shape.seq_len, vocab_size=vocab_size, seed=seed)
    module = encoder_module(model)
    with torch.inference_mode():
        reference = module(*inputs).numpy()
    try:
        onnx_bytes = export_onnx(module, inputs, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES, dynamic=True)
    except Exception as exc:  # exporter failures come in many types
        raise ProfilingError(f"ONNX export of {arch} failed: {type(exc).__name__}: {exc}") from exc
    if dtype == "fp16":
        if find_spec("onnxruntime") is None:
            raise DeviceUnavailable("tensorrt fp16 needs onnxruntime for its fp16 graph converter: pip install onnxruntime")
        from hwnas.devices.onnxruntime_cuda import to_fp16

        onnx_bytes = to_fp16(onnx_bytes)
    feeds = {name: t.numpy() for name, t in zip(INPUT_NAMES, inputs, strict=True)}
    return onnx_bytes, feeds, reference


def build_engine(trt: Any, onnx_bytes: bytes, shapes: dict[str, tuple], *, workspace_bytes: int | None = None,
                 logger: Any = None) -> bytes:
    """Parse ONNX bytes into a strongly typed network and build a serialised engine.

    Args:
        trt: the imported ``tensorrt`` module.
        shapes: :func:`profile_shapes` output (one optimisation profile).
        workspace_bytes: cap on TensorRT's scratch memory; ``None`` leaves TensorRT's default.

    Raises:
        ProfilingError: the parser rejected the graph or the build failed.
    """
    logger = logger or _logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None:  # TensorRT 10: opt in; TensorRT 11: always on, flag accepted
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ProfilingError(f"TensorRT could not parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    if workspace_bytes is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ProfilingError("TensorRT failed to build an engine (see its log above)")
    return bytes(serialized)


_LOGGERS: dict[int, Any] = {}


def _logger(trt: Any) -> Any:
    """One TensorRT logger per process: builders and runtimes should share it."""
    key = id(trt)
    if key not in _LOGGERS:
        _LOGGERS[key] = trt.Logger(trt.Logger.WARNING)
    return _LOGGERS[key]


def _torch_dtype(trt: Any, trt_dtype: Any):
    import torch

    table = {
        trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32,
        trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool,
    }
    for name, torch_dtype in (("INT64", torch.int64), ("BF16", torch.bfloat16)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = torch_dtype
    if trt_dtype not in table:
        raise ProfilingError(f"TensorRT tensor type {trt_dtype} has no torch equivalent for buffer allocation")
    return table[trt_dtype]


class _TensorRTRunner(Runner):
    """A deserialised engine with GPU buffers bound to every I/O tensor."""

    def __init__(self, trt: Any, engine_bytes: bytes, feeds: dict[str, Any], device: Any, logger: Any) -> None:
        import torch

        self._torch = torch
        self.device = device
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise ProfilingError("TensorRT could not deserialise the engine it just built")
        self.context = self.engine.create_execution_context()
        # A dedicated stream: TensorRT adds synchronisation when enqueued on the legacy default stream.
        self.stream = torch.cuda.Stream(device)
        self.buffers: dict[str, Any] = {}
        self.output_names: list[str] = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if name not in feeds:
                    raise ProfilingError(f"the engine expects an input {name!r} that hwnas does not provide")
                array = feeds[name]
                self.context.set_input_shape(name, tuple(array.shape))
                dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
                self.buffers[name] = torch.from_numpy(array).to(device=device, dtype=dtype).contiguous()
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise ProfilingError(f"output {name!r} has an unresolved shape {shape} after setting input shapes")
                dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
                self.buffers[name] = torch.empty(shape, dtype=dtype, device=device)
                self.output_names.append(name)
        for name, tensor in self.buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        self._timer = CudaEventTimer(device, stream=self.stream)
        torch.cuda.synchronize(device)

    def run(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise ProfilingError("TensorRT execute_async_v3 reported a failure")

    def synchronize(self) -> None:
        self.stream.synchronize()

    def time_block(self, number: int) -> float:
        return self._timer.time(self.run, number)

    def output(self):
        """The first output, ``batch x seq_len x hidden``, on the host as float32 numpy."""
        self.run()
        self.synchronize()
        return self.buffers[self.output_names[0]].float().cpu().numpy()

    def close(self) -> None:
        self.buffers = {}
        self.context = None
        self.engine = None
        self.runtime = None


class TensorRTDevice(Device):
    """TensorRT engines (fp32 or fp16) on an NVIDIA GPU, timed with CUDA events.

    Args:
        device_index: which visible GPU.
        workspace_gib: cap on TensorRT's builder scratch memory in GiB (``None``: TensorRT's default).
        **kwargs: see :class:`~hwnas.devices.base.Device`.
    """

    name = "tensorrt"
    description = "NVIDIA TensorRT engines built from ONNX (fp32, fp16)"
    install_hint = "pip install tensorrt on a machine with an NVIDIA GPU and driver, plus a CUDA build of torch"
    dtypes = ("fp32", "fp16")

    def __init__(self, *, device_index: int = 0, workspace_gib: float | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_int("device_index", device_index, 0)
        if workspace_gib is not None and (isinstance(workspace_gib, bool) or not isinstance(workspace_gib, (int, float))
                                          or not workspace_gib > 0):
            raise InvalidConfig(f"workspace_gib must be a positive number of GiB or None; got {workspace_gib!r}")
        self.device_index = device_index
        self.workspace_gib = workspace_gib

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        if find_spec("tensorrt") is None:
            return False, "the tensorrt package is not installed (NVIDIA's wheels install only next to an NVIDIA driver)"
        for module, package in (("onnx", "onnx"), ("transformers", "transformers")):
            if find_spec(module) is None:
                return False, f"{package} is not installed (needed for the ONNX export): pip install {package}"
        ok, reason = torch_cuda_status()
        if not ok:
            return False, f"tensorrt needs torch with CUDA for its GPU buffers, but {reason}"
        return True, ""

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out.update(device_index=self.device_index, workspace_gib=self.workspace_gib,
                   profile="min=opt=max=measured shape", typing="strong")
        return out

    def fingerprint(self) -> dict[str, Any]:
        fp = host_fingerprint(self.threads, ("torch", "transformers", "onnx", "tensorrt"))
        fp.update(gpu_fingerprint(self.device_index))
        return fp

    def prepare(self, arch: Architecture, shape: Shape) -> Runner:
        import tensorrt as trt
        import torch

        self.check_shape(shape)
        device = torch.device("cuda", self.device_index)
        start = time.perf_counter()
        with self.pinned():
            onnx_bytes, feeds, reference = export_for_tensorrt(
                arch, shape, dtype=self.dtype, vocab_size=self.vocab_size, max_positions=self.max_positions,
                attn_implementation=self.attn_implementation, seed=self.seed)
        logger = _logger(trt)
        workspace = None if self.workspace_gib is None else int(self.workspace_gib * 2**30)
        engine_bytes = build_engine(trt, onnx_bytes, profile_shapes(shape), workspace_bytes=workspace, logger=logger)
        runner = verified(_TensorRTRunner(trt, engine_bytes, feeds, device, logger), reference,
                          ATOL_FP16 if self.dtype == "fp16" else ATOL_FP32, f"TensorRT output of {arch}")
        runner.export_s = time.perf_counter() - start
        runner.engine_bytes = len(engine_bytes)
        return runner
