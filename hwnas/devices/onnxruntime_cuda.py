"""``onnxruntime-cuda``: ONNX Runtime's CUDA execution provider with IOBinding.

The encoder is exported to ONNX as for ``onnxruntime`` (checked against
PyTorch), then run by ``CUDAExecutionProvider``. Inputs are copied to the GPU
once, when the runner is built, and the output is pre-allocated on the GPU and
bound as well, so a timed call is the graph alone: no host-device copy.

``fp16`` converts the exported fp32 graph with ONNX Runtime's own converter
(``onnxruntime.transformers.float16``), keeping int64 inputs and an fp32 output
so the interface is unchanged; LayerNorm and softmax stay accurate enough for
the output check at :data:`ATOL_FP16`.
"""

from __future__ import annotations

import time
from typing import Any

from hwnas.devices.base import Runner, Shape, verified
from hwnas.devices.cuda import gpu_fingerprint, nvidia_gpu_present
from hwnas.devices.fingerprint import host_fingerprint
from hwnas.devices.onnxruntime import ORTDevice
from hwnas.errors import ProfilingError, check_int
from hwnas.space import Architecture

__all__ = ["ORTCUDADevice", "BoundORTRunner", "to_fp16", "ATOL_FP32", "ATOL_FP16"]

#: Largest absolute output difference from PyTorch (CPU, fp32) accepted on the GPU.
#: Looser than the CPU provider's 1e-3: cuBLAS may use TF32 and reorders sums.
ATOL_FP32 = 1e-2
#: The same for an fp16 graph (10 mantissa bits; activations of magnitude ~1-10).
ATOL_FP16 = 5e-2


def to_fp16(onnx_bytes: bytes) -> bytes:
    """Convert an fp32 ONNX model to fp16 weights and compute, keeping input and output types.

    Returns the serialised fp16 model. Raises :class:`ProfilingError` if the converter fails.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load_from_string(onnx_bytes)
    try:
        converted = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:  # the converter raises plain Exceptions of several kinds
        raise ProfilingError(f"fp16 conversion of the ONNX graph failed: {type(exc).__name__}: {exc}") from exc
    return converted.SerializeToString()


class BoundORTRunner(Runner):
    """An ONNX Runtime session whose inputs and outputs are bound to device memory.

    Args:
        session: an ``onnxruntime.InferenceSession``.
        feeds: input name -> numpy array; copied to the device once, here.
        device_type, device_id: where inputs and outputs live (``"cuda"``, 0; or
            ``"cpu"``, 0, which tests the same binding code on any machine).
        build_s, export_s: seconds, as in :class:`~hwnas.devices.base.Runner`.
    """

    def __init__(self, session: Any, feeds: dict[str, Any], *, device_type: str = "cuda", device_id: int = 0,
                 build_s: float = 0.0, export_s: float = 0.0) -> None:
        import numpy as np
        import onnxruntime as ort

        self.session = session
        self.build_s = build_s
        self.export_s = export_s
        self.binding = session.io_binding()
        # Keep every OrtValue referenced: the binding holds raw device pointers.
        self._values = {}
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), device_type, device_id)
            self.binding.bind_ortvalue_input(name, value)
            self._values[name] = value
        shapes = self._output_shapes(feeds)
        for out in session.get_outputs():
            dtype = np.float16 if out.type == "tensor(float16)" else np.float32
            if shapes.get(out.name) is not None:
                value = ort.OrtValue.ortvalue_from_shape_and_type(shapes[out.name], dtype, device_type, device_id)
                self.binding.bind_ortvalue_output(out.name, value)
                self._values[out.name] = value
            else:  # shape unknown before running: let ONNX Runtime allocate it on the device
                self.binding.bind_output(out.name, device_type, device_id)
        self.binding.synchronize_inputs()

    def _output_shapes(self, feeds: dict[str, Any]) -> dict[str, list[int] | None]:
        """Output shapes, resolving symbolic batch/sequence dims from the input arrays."""
        batch, seq = next(iter(feeds.values())).shape[:2]
        symbols = {"batch": batch, "sequence": seq}
        shapes: dict[str, list[int] | None] = {}
        for out in self.session.get_outputs():
            dims = []
            for d in out.shape:
                if isinstance(d, int):
                    dims.append(d)
                elif isinstance(d, str) and d in symbols:
                    dims.append(int(symbols[d]))
                else:
                    dims = None
                    break
            shapes[out.name] = dims
        return shapes

    def run(self) -> None:
        self.session.run_with_iobinding(self.binding)

    def synchronize(self) -> None:
        # run_with_iobinding already waits for the provider's stream; this also
        # covers sessions created with execution-provider synchronisation disabled.
        self.binding.synchronize_outputs()

    def output(self):
        """The first output, ``batch x seq_len x hidden``, copied to the host as float32."""
        self.run()
        return self.binding.copy_outputs_to_cpu()[0].astype("float32")

    def close(self) -> None:
        self.binding = None
        self._values = {}
        self.session = None


class ORTCUDADevice(ORTDevice):
    """ONNX Runtime, CUDA execution provider, inputs and outputs bound on the GPU.

    Args:
        device_index: which visible GPU.
        **kwargs: see :class:`~hwnas.devices.base.Device`.
    """

    thread_clock = False
    host_bound = False
    name = "onnxruntime-cuda"
    description = "ONNX Runtime, CUDA execution provider with IOBinding"
    install_hint = "pip install onnxruntime-gpu (instead of onnxruntime) on a machine with an NVIDIA GPU"
    dtypes = ("fp32", "fp16")
    provider = "CUDAExecutionProvider"

    def __init__(self, *, device_index: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_int("device_index", device_index, 0)
        self.device_index = device_index

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        missing = cls.missing_package(("torch", "torch"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime-gpu"))
        if missing:
            return False, missing
        try:
            import onnxruntime
        except Exception as exc:  # noqa: BLE001 (deliberate: a broken install must not crash `hwnas devices`)
            return False, f"onnxruntime failed to import: {type(exc).__name__}: {exc}"
        providers = onnxruntime.get_available_providers()
        if cls.provider not in providers:
            return False, (f"onnxruntime {onnxruntime.__version__} has no {cls.provider} (providers: "
                           f"{', '.join(providers)}); {cls.install_hint}")
        if not nvidia_gpu_present():
            return False, "onnxruntime has the CUDA provider but no NVIDIA GPU is visible (no /proc/driver/nvidia/gpus)"
        return True, ""

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out["device_index"] = self.device_index
        return out

    def fingerprint(self) -> dict[str, Any]:
        fp = host_fingerprint(self.threads, ("torch", "transformers", "onnx", "onnxruntime-gpu", "onnxruntime"))
        fp["execution_provider"] = self.provider
        fp.update(gpu_fingerprint(self.device_index))
        return fp

    def exported_kind(self) -> str | None:
        return None  # the exported model.onnx would run without IOBinding here; its encoder is measured

    def prepare(self, arch: Architecture, shape: Shape) -> Runner:
        import onnxruntime as ort

        onnx_bytes, feeds, reference, build_s, start = self.export(arch, shape)
        if self.dtype == "fp16":
            onnx_bytes = to_fp16(onnx_bytes)
        # ONNX Runtime keeps its CPU provider as an implicit fallback; it places a few
        # small shape computations there on purpose, so it is not disabled.
        session = ort.InferenceSession(onnx_bytes, self.session_options(),
                                       providers=[(self.provider, {"device_id": self.device_index})])
        runner = verified(BoundORTRunner(session, feeds, device_type="cuda", device_id=self.device_index,
                                         build_s=build_s), reference, ATOL_FP16 if self.dtype == "fp16" else ATOL_FP32,
                          f"ONNX Runtime CUDA output of {arch}")
        runner.export_s = time.perf_counter() - start
        return runner
