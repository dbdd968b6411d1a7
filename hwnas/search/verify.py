"""Verification: measure searched architectures on the device and compare with the predictor.

A search's answer is only right if it holds when measured. :func:`verify`
measures architectures with the same profiler (:func:`hwnas.profiling.measure_tasks`,
interleaved rounds, the default timing protocol) and the same device settings
(threads, dtype) as the predictor's training data, and reports for each the
predicted latency, the calibrated upper bound, the measured median and
whether the budget held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig
from hwnas.space import Architecture

__all__ = ["Verification", "predictor_device_settings", "verify", "summarise"]


@dataclass(frozen=True)
class Verification:
    """Predicted against measured latency of one architecture (milliseconds)."""

    arch: Architecture
    predicted_ms: float
    upper_ms: float
    measured_ms: float
    p10_ms: float
    p90_ms: float
    spread: float
    budget_ms: float
    role: str = ""

    @property
    def within_budget(self) -> bool:
        return self.measured_ms <= self.budget_ms

    @property
    def within_upper(self) -> bool:
        return self.measured_ms <= self.upper_ms

    @property
    def error(self) -> float:
        """Relative error of the prediction, (predicted - measured) / measured."""
        return (self.predicted_ms - self.measured_ms) / self.measured_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.as_dict(),
            "role": self.role,
            "predicted_ms": self.predicted_ms,
            "upper_ms": self.upper_ms,
            "measured_ms": self.measured_ms,
            "p10_ms": self.p10_ms,
            "p90_ms": self.p90_ms,
            "spread": self.spread,
            "budget_ms": self.budget_ms,
            "within_budget": self.within_budget,
            "within_upper": self.within_upper,
            "error": self.error,
        }


def predictor_device_settings(predictor: Any) -> dict[str, Any]:
    """``{"threads": ..., "dtype": ...}`` the predictor's training measurements were taken with."""
    manifest = getattr(predictor, "manifest", None) or {}
    device = manifest.get("device") or {}
    if not isinstance(device, dict):
        device = {}
    settings = device.get("settings") or {}
    threads = device.get("threads", settings.get("threads"))
    dtype = device.get("dtype", settings.get("dtype")) or "fp32"
    return {"threads": threads, "dtype": dtype}


def verify(
    archs: Sequence[Architecture],
    *,
    device: str,
    predictor: Any,
    budget_ms: float,
    seq_len: int = 128,
    batch_size: int = 1,
    roles: Sequence[str] | None = None,
    threads: int | None | str = "predictor",
    dtype: str | None = None,
    timing: Any = None,
    interleave: int = 8,
    override: bool = False,
    seed: int = 0,
    on_record: Callable[[Verification], None] | None = None,
    on_status: Callable[[str], None] | None = None,
) -> list[Verification]:
    """Measure ``archs`` on ``device`` and compare with ``predictor``.

    Args:
        archs: architectures to measure (duplicates are measured once).
        device: a registered device name; must be the predictor's device
            (``PredictorMismatch`` otherwise, unless ``override``).
        predictor: the predictor bundle the search used.
        budget_ms: the latency budget in milliseconds.
        seq_len, batch_size: the input shape.
        roles: a label per architecture (``winner``, ``front``) for the report.
        threads, dtype: device settings; default: those recorded in the predictor.
        timing: a :class:`~hwnas.devices.timing.TimingConfig` (default protocol when None).
        interleave: architectures timed together in interleaved rounds.

    Returns:
        One :class:`Verification` per distinct architecture, in input order.
    """
    from hwnas.devices import Shape, create_device
    from hwnas.profiling import Task, measure_tasks

    if not archs:
        raise InvalidConfig("nothing to verify: no architectures given")
    if isinstance(interleave, bool) or not isinstance(interleave, int) or interleave < 1:
        raise InvalidConfig(f"interleave must be an integer >= 1; got {interleave!r}")
    recorded = predictor_device_settings(predictor)
    if threads == "predictor":
        threads = recorded["threads"]
    dtype = dtype or recorded["dtype"]
    predictor.check_device(device, override)
    roles = list(roles) if roles is not None else [""] * len(archs)
    if len(roles) != len(archs):
        raise InvalidConfig(f"got {len(roles)} roles for {len(archs)} architectures")
    unique: dict[Architecture, list[str]] = {}
    for a, r in zip(archs, roles):
        labels = unique.setdefault(a, [])
        if r and r not in labels:
            labels.append(r)
    todo = list(unique)
    predicted = np.asarray(predictor.predict(todo, seq_len=seq_len, batch_size=batch_size), dtype=np.float64)
    upper = np.asarray(predictor.predict_upper(todo, seq_len=seq_len, batch_size=batch_size), dtype=np.float64)
    dev = create_device(device, threads=threads, dtype=dtype, seed=seed)
    shape = Shape(batch_size, seq_len)
    out: list[Verification] = []
    for chunk_no, offset in enumerate(range(0, len(todo), interleave)):
        chunk = todo[offset: offset + interleave]
        records = measure_tasks(dev, [Task(a, shape) for a in chunk], timing, seed=seed * 100003 + chunk_no,
                                on_status=on_status)
        for k, (a, rec) in enumerate(zip(chunk, records)):
            j = offset + k
            v = Verification(
                arch=a, predicted_ms=float(predicted[j]), upper_ms=float(upper[j]),
                measured_ms=float(rec["latency_ms"]), p10_ms=float(rec.get("p10_ms", float("nan"))),
                p90_ms=float(rec.get("p90_ms", float("nan"))), spread=float(rec.get("spread", float("nan"))),
                budget_ms=float(budget_ms), role=",".join(unique[a]),
            )
            out.append(v)
            if on_record:
                on_record(v)
    return out


def summarise(results: Sequence[Verification]) -> dict[str, Any]:
    """Share within budget and within the upper bound, and prediction errors (fractions)."""
    if not results:
        return {"n": 0}
    err = np.array([r.error for r in results])
    return {
        "n": len(results),
        "within_budget": float(np.mean([r.within_budget for r in results])),
        "within_upper": float(np.mean([r.within_upper for r in results])),
        "mean_abs_error": float(np.mean(np.abs(err))),
        "max_abs_error": float(np.max(np.abs(err))),
        "mean_error": float(np.mean(err)),
    }
