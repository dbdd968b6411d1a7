"""``onnxruntime``: ONNX Runtime's CPU execution provider.

Each architecture is exported once with ``torch.onnx`` (in memory), its
outputs are checked against PyTorch (``ATOL``), and an inference session with
``threads`` intra-op threads is created. Export and session creation are
recorded as ``export_s``; they never count as latency.
"""

from __future__ import annotations

import io
import time
import warnings
from typing import Any

from hwnas.devices._models import build_encoder, import_runtime, encoder_module, example_inputs
from hwnas.devices.base import Device, Runner, Shape, verified
from hwnas.devices.fingerprint import host_fingerprint
from hwnas.errors import ProfilingError
from hwnas.space import Architecture

__all__ = ["ORTDevice", "export_onnx", "ATOL"]

#: Largest absolute difference allowed between PyTorch and ONNX Runtime outputs
#: (fp32, LayerNorm-scaled activations of magnitude ~1).
ATOL = 1e-3


def export_onnx(module: Any, inputs: tuple[Any, ...], *, input_names: list[str], output_names: list[str],
                dynamic: bool = False, exporter: str = "torchscript", opset: int = 17) -> bytes:
    """Export ``module`` to ONNX and return the serialised model.

    ``exporter="torchscript"`` is torch's tracing exporter, about 3x faster for
    these models than ``"dynamo"`` (the ``torch.export``-based one), which is
    used when the tracing exporter is gone or fails.
    """
    import torch

    dynamic_axes = None
    if dynamic:
        dynamic_axes = {n: {0: "batch", 1: "sequence"} for n in input_names + output_names}
    buffer = io.BytesIO()
    if exporter == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, inputs, buffer, input_names=input_names, output_names=output_names,
                                  dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False)
            return buffer.getvalue()
        except (TypeError, RuntimeError, AttributeError):
            buffer = io.BytesIO()
    import contextlib
    import os

    with warnings.catch_warnings(), open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, inputs, input_names=input_names, output_names=output_names,
                                    dynamic_axes=dynamic_axes, opset_version=max(opset, 18), dynamo=True,
                                    verbose=False)
    program.save(buffer)
    return buffer.getvalue()


class _ORTRunner(Runner):
    def __init__(self, session: Any, feeds: dict[str, Any], build_s: float, export_s: float, max_abs_diff: float) -> None:
        self.session = session
        self.feeds = feeds
        self.build_s = build_s
        self.export_s = export_s
        self.max_abs_diff = max_abs_diff
        self._outputs = [o.name for o in session.get_outputs()]

    def run(self) -> None:
        self.session.run(self._outputs, self.feeds)

    def output(self):
        return self.session.run(self._outputs, self.feeds)[0]

    def close(self) -> None:
        self.session = None


class ORTDevice(Device):
    """ONNX Runtime, CPU execution provider, all graph optimisations on."""

    name = "onnxruntime"
    description = "ONNX Runtime, CPU execution provider"
    install_hint = "pip install 'hwnas[onnx]'"
    dtypes = ("fp32",)
    provider = "CPUExecutionProvider"
    thread_clock = True
    host_bound = True

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        missing = cls.missing_package(("torch", "torch"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"))
        if missing:
            return False, missing
        import onnxruntime

        if cls.provider not in onnxruntime.get_available_providers():
            return False, f"onnxruntime has no {cls.provider} (providers: {', '.join(onnxruntime.get_available_providers())})"
        return True, ""

    def fingerprint(self) -> dict[str, Any]:
        fp = host_fingerprint(self.threads, ("torch", "transformers", "onnx", "onnxruntime"))
        fp["execution_provider"] = self.provider
        return fp

    def session_options(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads is not None:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return options

    def export(self, arch: Architecture, shape: Shape) -> tuple[bytes, dict[str, Any], Any, float, float]:
        """Build ``arch``, run it once in PyTorch and export it to ONNX.

        Returns ``(onnx_bytes, feeds, reference, build_s, export_start)``: the
        serialised model, its numpy inputs, PyTorch's output (``batch x seq_len
        x hidden``) to verify against, the build time in seconds, and the
        ``time.perf_counter()`` at which export started (the caller stops that
        clock once its session is ready).
        """
        import torch

        self.check_shape(shape)
        import_runtime()
        start = time.perf_counter()
        model = build_encoder(arch, vocab_size=self.vocab_size, max_positions=self.max_positions,
                              attn_implementation=self.attn_implementation, seed=self.seed)
        inputs = example_inputs(shape.batch_size, shape.seq_len, vocab_size=self.vocab_size, seed=self.seed)
        module = encoder_module(model)
        build_s = time.perf_counter() - start
        export_start = time.perf_counter()
        with self.pinned():
            with torch.inference_mode():
                reference = module(*inputs).numpy()
            try:
                onnx_bytes = export_onnx(module, inputs, input_names=["input_ids", "attention_mask"],
                                         output_names=["last_hidden_state"])
            except Exception as exc:  # exporter failures come in many types
                raise ProfilingError(f"ONNX export of {arch} failed: {type(exc).__name__}: {exc}") from exc
        feeds = {"input_ids": inputs[0].numpy(), "attention_mask": inputs[1].numpy()}
        return onnx_bytes, feeds, reference, build_s, export_start

    def prepare(self, arch: Architecture, shape: Shape) -> Runner:
        import onnxruntime as ort

        onnx_bytes, feeds, reference, build_s, start = self.export(arch, shape)
        session = ort.InferenceSession(onnx_bytes, self.session_options(), providers=[self.provider])
        runner = verified(_ORTRunner(session, feeds, build_s, 0.0, 0.0), reference, ATOL,
                          f"ONNX Runtime output of {arch}")
        runner.export_s = time.perf_counter() - start
        return runner

    def exported_kind(self) -> str | None:
        return "exported model.onnx (ONNX Runtime)"

    def prepare_exported(self, folder: Any, shape: Shape) -> Runner:
        """A session of ``folder/model.onnx`` (the exported classifier) with this device's options."""
        from pathlib import Path

        import numpy as np
        import onnxruntime as ort

        from hwnas.errors import InvalidData

        path = Path(folder) / "model.onnx"
        if not path.is_file():
            raise InvalidData(f"{path} does not exist: export the student first (hwnas distill writes it)")
        start = time.perf_counter()
        session = ort.InferenceSession(str(path), self.session_options(), providers=[self.provider])
        vocab = self.vocab_size
        config = Path(folder) / "config.json"
        if config.is_file():
            import json

            vocab = int(json.loads(config.read_text()).get("vocab_size", vocab))
        input_ids, attention_mask = example_inputs(shape.batch_size, shape.seq_len, vocab_size=vocab, seed=self.seed)
        names = {i.name for i in session.get_inputs()}
        feeds = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy(),
                 "token_type_ids": np.zeros_like(input_ids.numpy())}
        feeds = {k: v for k, v in feeds.items() if k in names}
        session.run(None, feeds)
        return _ORTRunner(session, feeds, 0.0, time.perf_counter() - start, 0.0)
