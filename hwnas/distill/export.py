"""Export a trained student: Hugging Face folder, ONNX, verification, latency on the device.

* :func:`save_hf` writes ``save_pretrained`` weights and the tokenizer, reloads the
  folder with ``AutoModelForSequenceClassification`` and checks its logits
  against the in-memory model (``HF_ATOL``).
* :func:`export_onnx_classifier` writes ``model.onnx`` (inputs ``input_ids``,
  ``attention_mask``, ``token_type_ids``, dynamic batch and sequence axes;
  output ``logits``), runs it with ONNX Runtime on real tokenised examples of
  several lengths and checks it against PyTorch (``ONNX_ATOL``).
* :func:`measure_models` times trained models held in memory with hwnas's
  timing protocol (benchmarks); ``hwnas distill`` measures the exported
  student with :func:`hwnas.search.verify.measure_student`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas._files import atomic_write_bytes
from hwnas.errors import HwnasError

__all__ = ["HF_ATOL", "ONNX_ATOL", "save_hf", "export_onnx_classifier", "measure_models", "ExportCheck", "ExportError"]

#: Largest absolute logit difference allowed between the model in memory and its reloaded folder.
HF_ATOL = 1e-5
#: Largest absolute logit difference allowed between PyTorch and ONNX Runtime (fp32).
ONNX_ATOL = 1e-4


class ExportError(HwnasError, RuntimeError):
    """An exported model does not reproduce the trained one within tolerance."""


@dataclass
class ExportCheck:
    """Result of a verification: the largest absolute logit difference and the tolerance it met."""

    path: str
    max_abs_diff: float
    atol: float
    examples: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "max_abs_diff": self.max_abs_diff, "atol": self.atol, "examples": self.examples,
                "seconds": round(self.seconds, 3)}


def _sample_batch(tokenizer: Any, texts: list[str], pairs: list[str] | None, max_len: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_len, padding="longest", return_tensors="pt")
    if "token_type_ids" not in enc:
        enc["token_type_ids"] = torch.zeros_like(enc["input_ids"])
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


@torch.no_grad()
def _logits(model: Any, batch: dict[str, torch.Tensor]) -> np.ndarray:
    model.eval()
    return model(**batch).logits.float().numpy()


def save_hf(model: Any, tokenizer: Any, out_dir: str | Path, texts: list[str], pairs: list[str] | None = None,
            max_len: int = 128) -> ExportCheck:
    """``save_pretrained`` model and tokenizer into ``out_dir``, reload and compare logits.

    Raises:
        ExportError: the reloaded model differs by more than :data:`HF_ATOL`.
    """
    from transformers import AutoModelForSequenceClassification

    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    reloaded = AutoModelForSequenceClassification.from_pretrained(out_dir)
    batch = _sample_batch(tokenizer, texts, pairs, max_len)
    diff = float(np.abs(_logits(model, batch) - _logits(reloaded, batch)).max())
    check = ExportCheck(str(out_dir), diff, HF_ATOL, len(texts), time.perf_counter() - start)
    if not diff <= HF_ATOL:
        raise ExportError(f"{out_dir}: reloaded model differs from the trained one by {diff:.2e} (allowed {HF_ATOL:.0e})")
    return check


class _LogitsOnly(torch.nn.Module):
    """``forward(input_ids, attention_mask, token_type_ids) -> logits`` with positional inputs, for export."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits


def export_onnx_classifier(model_dir: str | Path, texts: list[str], pairs: list[str] | None = None,
                           max_len: int = 128, filename: str = "model.onnx", threads: int = 1) -> ExportCheck:
    """Export the saved classifier in ``model_dir`` to ``model_dir/filename`` and verify it.

    The model is loaded from the folder (what a user ships), exported with
    dynamic batch and sequence axes, run by ONNX Runtime's CPU provider on
    ``texts`` padded to their longest member and on single examples of other
    lengths, and compared with PyTorch.

    Raises:
        ExportError: any logit differs by more than :data:`ONNX_ATOL`.
    """
    import onnxruntime as ort
    from transformers import AutoModelForSequenceClassification

    from hwnas.devices.onnxruntime import export_onnx

    start = time.perf_counter()
    model_dir = Path(model_dir)
    tokenizer = _tokenizer(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="eager").eval()
    batch = _sample_batch(tokenizer, texts, pairs, max_len)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    data = export_onnx(_LogitsOnly(model).eval(), tuple(batch[n] for n in names), input_names=names,
                       output_names=["logits"], dynamic=True)
    target = model_dir / filename
    atomic_write_bytes(target, data)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    # the padded batch, and each of the first examples alone (a different sequence length each)
    batches = [batch] + [_sample_batch(tokenizer, [t], None if pairs is None else [p], max_len)
                         for t, p in zip(texts[:3], (pairs or [None] * len(texts))[:3], strict=True)]
    diff = 0.0
    for b in batches:
        (onnx_logits,) = session.run(["logits"], {n: b[n].numpy() for n in names})
        diff = max(diff, float(np.abs(onnx_logits - _logits(model, b)).max()))
    check = ExportCheck(str(target), diff, ONNX_ATOL, len(texts), time.perf_counter() - start)
    if not diff <= ONNX_ATOL:
        raise ExportError(f"{target}: ONNX Runtime differs from PyTorch by {diff:.2e} (allowed {ONNX_ATOL:.0e})")
    return check


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


class _ModelRunner:
    """A trained classifier in memory as a timing runner (see :class:`hwnas.devices.base.Runner`).

    The clock is the timing protocol's (:func:`hwnas.devices.timing.time_block`), not the runner's.
    """

    build_s = 0.0
    export_s = 0.0

    def __init__(self, model: Any, batch: dict[str, torch.Tensor]) -> None:
        self.model = model.eval()
        self.batch = batch

    def run(self) -> None:
        with torch.inference_mode():
            self.model(**self.batch)

    def synchronize(self) -> None:
        pass

    def time_block(self, number: int) -> float:
        start = time.perf_counter()
        for _ in range(number):
            self.run()
        return time.perf_counter() - start

    def after_block(self) -> None:
        return None

    def close(self) -> None:
        self.model = None


CLOCKS = ("wall", "thread_cpu")


def measure_models(models: dict[str, Any], *, seq_len: int = 128, batch_size: int = 1, threads: int | None = 1,
                   timing: Any = None, seed: int = 0, clock: str = "wall") -> dict[str, dict[str, Any]]:
    """Latency of trained classifiers held in memory, on the ``cpu`` device, in interleaved rounds.

    For benchmarks that time models which exist only in memory (a fine-tuned
    teacher). ``hwnas distill`` and ``hwnas run`` measure exported students with
    :func:`hwnas.search.verify.measure_student` instead, on the searched device
    and shape. Both go through :func:`hwnas.profiling.measure_runners`: the
    ``cpu`` device's thread pinning and the timing protocol with ``clock``
    (``"thread_cpu"`` needs ``threads=1``).

    Inputs are random token ids of ``batch_size x seq_len`` with a full mask.

    Returns:
        name -> ``{"latency_ms": median, "p10_ms", "p90_ms", "iqr_ms", "spread", ..., "clock"}`` in milliseconds.
    """
    from dataclasses import replace

    from hwnas.devices.registry import create_device
    from hwnas.devices.timing import TimingConfig, check_clock
    from hwnas.profiling import measure_runners

    device = create_device("cpu", threads=threads)
    check_clock(device, clock)
    timing = replace(timing or TimingConfig(), clock=clock)
    gen = torch.Generator().manual_seed(seed)
    builders = []
    for name, model in models.items():
        vocab = model.config.vocab_size
        batch = {
            "input_ids": torch.randint(0, vocab, (batch_size, seq_len), generator=gen),
            "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
            "token_type_ids": torch.zeros(batch_size, seq_len, dtype=torch.long),
        }
        builders.append((name, lambda model=model, batch=batch: _ModelRunner(model, batch)))
    measured = measure_runners(device, builders, timing, seed=seed)
    out = {}
    for name, (_, m) in zip(models, measured, strict=True):
        summary = m.summary()
        summary.pop("samples_ms", None)
        out[name] = {**summary, "seq_len": seq_len, "batch_size": batch_size, "threads": threads, "clock": clock}
    return out
