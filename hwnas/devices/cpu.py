"""``cpu``: PyTorch eager on the host CPU, inference mode, pinned intra-op threads."""

from __future__ import annotations

import time
from typing import Any

from hwnas.devices._models import build_encoder, import_runtime, example_inputs
from hwnas.devices.base import Device, Runner, Shape
from hwnas.devices.fingerprint import host_fingerprint
from hwnas.space import Architecture

__all__ = ["CPUDevice"]


class _TorchCPURunner(Runner):
    def __init__(self, model: Any, inputs: tuple[Any, Any], build_s: float) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.input_ids, self.attention_mask = inputs
        self.build_s = build_s

    def run(self) -> None:
        with self._torch.inference_mode():
            self.model(input_ids=self.input_ids, attention_mask=self.attention_mask)

    def output(self):
        """The last hidden state, ``batch x seq_len x hidden`` (for verification)."""
        with self._torch.inference_mode():
            return self.model(input_ids=self.input_ids, attention_mask=self.attention_mask).last_hidden_state

    def close(self) -> None:
        self.model = None


class _ExportedCPURunner(Runner):
    """A saved Hugging Face classifier: ``model(input_ids, attention_mask, token_type_ids)``."""

    def __init__(self, model: Any, feeds: dict[str, Any], build_s: float) -> None:
        import torch

        self._torch = torch
        self.model = model
        self.feeds = feeds
        self.build_s = build_s

    def run(self) -> None:
        with self._torch.inference_mode():
            self.model(**self.feeds)

    def close(self) -> None:
        self.model = None


def load_exported_classifier(folder: Any, *, attn_implementation: str = "sdpa", dtype: str = "fp32", device: Any = "cpu"):
    """The Hugging Face classifier saved in ``folder``, in eval mode on ``device``, in ``dtype``."""
    from pathlib import Path

    import torch
    from transformers import AutoModelForSequenceClassification

    from hwnas.devices._models import TORCH_DTYPES
    from hwnas.errors import InvalidData

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise InvalidData(f"{folder} holds no exported Hugging Face model (config.json is missing)")
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation=attn_implementation)
    if dtype != "fp32":
        model = model.to(getattr(torch, TORCH_DTYPES[dtype]))
    return model.to(device).eval()


def exported_feeds(vocab_size: int, shape: Shape, *, seed: int = 0, device: Any = "cpu") -> dict[str, Any]:
    """``input_ids``, ``attention_mask`` (full) and ``token_type_ids`` (zeros), ``batch x seq_len`` int64."""
    import torch

    input_ids, attention_mask = example_inputs(shape.batch_size, shape.seq_len, vocab_size=vocab_size, seed=seed)
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device),
            "token_type_ids": torch.zeros_like(input_ids).to(device)}


class CPUDevice(Device):
    """PyTorch eager on the CPU (``torch.inference_mode``), ``threads`` intra-op threads.

    Supports ``fp32`` and ``bf16`` (weights and activations in bfloat16).
    """

    name = "cpu"
    description = "PyTorch eager on the host CPU"
    install_hint = "pip install torch"
    dtypes = ("fp32", "bf16")
    thread_clock = True
    host_bound = True

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        from importlib.util import find_spec

        if find_spec("torch") is None:
            return False, "torch is not installed: pip install torch"
        if find_spec("transformers") is None:
            return False, "transformers is not installed: pip install transformers"
        return True, ""

    def fingerprint(self) -> dict[str, Any]:
        import torch

        fp = host_fingerprint(self.threads, ("torch", "transformers"))
        fp["torch_config"] = {
            "mkldnn": bool(torch.backends.mkldnn.is_available()), "interop_threads": torch.get_num_interop_threads(),
        }
        return fp

    def prepare(self, arch: Architecture, shape: Shape) -> Runner:
        self.check_shape(shape)
        import_runtime()
        start = time.perf_counter()
        model = build_encoder(
            arch, vocab_size=self.vocab_size, max_positions=self.max_positions,
            attn_implementation=self.attn_implementation, dtype=self.dtype, seed=self.seed,
        )
        inputs = example_inputs(shape.batch_size, shape.seq_len, vocab_size=self.vocab_size, seed=self.seed)
        return _TorchCPURunner(model, inputs, time.perf_counter() - start)

    def exported_kind(self) -> str | None:
        return "exported Hugging Face model (PyTorch)"

    def prepare_exported(self, folder: Any, shape: Shape) -> Runner:
        """The saved Hugging Face classifier in ``folder``, as ``from_pretrained`` loads it."""
        import_runtime()
        start = time.perf_counter()
        model = load_exported_classifier(folder, attn_implementation=self.attn_implementation, dtype=self.dtype)
        feeds = exported_feeds(model.config.vocab_size, shape, seed=self.seed)
        return _ExportedCPURunner(model, feeds, time.perf_counter() - start)
