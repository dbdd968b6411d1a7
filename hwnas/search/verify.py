"""Verification: measure searched architectures on the device and compare with the predictor.

A search's answer is only right if it holds when measured. :func:`verify`
measures architectures with the same profiler (:func:`hwnas.profiling.measure_tasks`,
interleaved rounds, the default timing protocol) and the same device settings
(threads, dtype, clock) as the predictor's training data, and reports for each the
predicted latency, the calibrated upper bound, the measured median and
whether the budget held.

Drift: the predictor's manifest keeps the latency of its profile's reference
architecture (see :mod:`hwnas.profiling.reference`). Verification times the
same reference in the same interleaved rounds, so it can say how fast the
machine runs now compared with profiling time, and gives two verdicts:

* **raw**: the measured median against the budget, as measured now;
* **drift-normalised**: the measurement at the machine's speed of profiling
  time, against the budget: the per-round ratio of the measured model to the
  reference timed in the same rounds, times the reference's latency at
  profiling time (the verdict the machine would give in the state it was
  profiled in).

When they disagree the machine's current speed decides the verdict, and the
honest answer is to re-verify on a quiet machine (:func:`verdict_lines` says so).
:func:`measure_student` is the same path for a trained, exported student
(``hwnas distill`` and ``hwnas run``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, check_int
from hwnas.profiling.reference import Drift
from hwnas.space import Architecture

__all__ = ["Verification", "device_options_for", "predictor_device_settings", "predictor_reference", "verify", "summarise",
           "verdict_lines", "measure_student", "timing_for", "budget_verdicts"]


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
    drift: Drift | None = None
    #: per-round ratio of the measurement to the reference timed in the same rounds
    reference_ratio: float | None = None
    #: the Ray node that measured it (verification on a fleet), else ``None``
    node_id: str | None = None

    @property
    def within_budget(self) -> bool:
        """The raw verdict: the median measured now is within the budget."""
        return self.measured_ms <= self.budget_ms

    @property
    def normalised_ms(self) -> float | None:
        """The measured median at the machine's speed of profiling time (``None`` without a reference)."""
        return self.drift.normalise(self.measured_ms, self.reference_ratio) if self.drift is not None else None

    @property
    def within_budget_normalised(self) -> bool | None:
        """The drift-normalised verdict, or ``None`` when no reference was recorded."""
        n = self.normalised_ms
        return None if n is None else bool(n <= self.budget_ms)

    @property
    def verdicts_agree(self) -> bool:
        n = self.within_budget_normalised
        return n is None or n == self.within_budget

    @property
    def within_upper(self) -> bool:
        return self.measured_ms <= self.upper_ms

    @property
    def error(self) -> float:
        """Relative error of the prediction, (predicted - measured) / measured."""
        return (self.predicted_ms - self.measured_ms) / self.measured_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch.as_dict(), "role": self.role, "predicted_ms": self.predicted_ms,
            "upper_ms": self.upper_ms, "measured_ms": self.measured_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms,
            "spread": self.spread, "budget_ms": self.budget_ms, "within_budget": self.within_budget,
            "within_upper": self.within_upper, "error": self.error, "normalised_ms": self.normalised_ms,
            "within_budget_normalised": self.within_budget_normalised, "verdicts_agree": self.verdicts_agree,
            "drift": self.drift.to_dict() if self.drift is not None else None,
            **({"node_id": self.node_id} if self.node_id else {}),
        }


def predictor_device_settings(predictor: Any) -> dict[str, Any]:
    """``{"threads", "dtype", "options"}`` the predictor's training measurements were taken with.

    ``options`` are the device's own options (``cuda_graphs``...) recorded in its settings; empty for a device
    not registered here.
    """
    manifest = getattr(predictor, "manifest", None) or {}
    device = manifest.get("device") or {}
    if not isinstance(device, dict):
        device = {}
    settings = device.get("settings") or {}
    threads = device.get("threads", settings.get("threads"))
    dtype = device.get("dtype", settings.get("dtype")) or "fp32"
    return {"threads": threads, "dtype": dtype, "options": device_options_for(device.get("name"), settings)}


def device_options_for(name: Any, settings: Any) -> dict[str, Any]:
    """The entries of ``settings`` that are options of device ``name`` (none for a name not registered here)."""
    from hwnas.devices.registry import get_device_class
    from hwnas.errors import HwnasError

    if not isinstance(name, str) or not isinstance(settings, dict):
        return {}
    try:
        names = get_device_class(name).option_names()
    except HwnasError:
        return {}
    return {k: settings[k] for k in names if k in settings}


def predictor_clock(predictor: Any) -> str:
    """The clock of the predictor's measurements (``"wall"`` for bundles that record none)."""
    device = (getattr(predictor, "manifest", None) or {}).get("device") or {}
    return (device.get("clock") if isinstance(device, dict) else None) or "wall"


def predictor_reference(predictor: Any) -> tuple[Any, float | None]:
    """``(reference task, its latency at fit time in ms)`` from the manifest, or ``(None, None)``."""
    from hwnas.devices import Shape
    from hwnas.profiling import Task

    ref = (getattr(predictor, "manifest", None) or {}).get("reference")
    if not isinstance(ref, dict) or not ref.get("arch") or not ref.get("latency_ms"):
        return None, None
    try:
        task = Task(Architecture.parse(str(ref["arch"])), Shape(int(ref["batch_size"]), int(ref["seq_len"])))
    except (KeyError, TypeError, ValueError):
        return None, None
    return task, float(ref["latency_ms"])


def timing_for(predictor: Any, timing: Any = None) -> Any:
    """``timing`` (default protocol when None) with the predictor's clock."""
    from hwnas.devices.timing import TimingConfig

    clock = predictor_clock(predictor)
    timing = timing or TimingConfig()
    return timing if timing.clock == clock else replace(timing, clock=clock)


def verify(
    archs: Sequence[Architecture], *, device: str, predictor: Any, budget_ms: float, seq_len: int = 128,
    batch_size: int = 1, roles: Sequence[str] | None = None, threads: int | None | str = "predictor",
    dtype: str | None = None, timing: Any = None, interleave: int = 8, override: bool = False, strict: bool = False,
    seed: int = 0, on_record: Callable[[Verification], None] | None = None,
    on_status: Callable[[str], None] | None = None, fleet: Any = None,
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
        timing: a :class:`~hwnas.devices.timing.TimingConfig` (default protocol when None);
            its clock is replaced by the predictor's.
        interleave: architectures timed together in interleaved rounds (the
            predictor's reference architecture is timed in every chunk too).
        strict: refuse (instead of warn) when this host differs from the
            predictor's for a host-bound device (on a fleet: when the nodes differ).
        fleet: a :class:`~hwnas.profiling.fleet.FleetConfig`: measure on a Ray
            cluster's nodes instead of this machine, one chunk per node at a time
            (:func:`~hwnas.profiling.fleet.measure_on_cluster`); each chunk times
            the predictor's reference on its own node, so the drift-normalised
            verdict compares every architecture with the reference on the node
            that measured it. Only this process sees the results (one writer).

    Returns:
        One :class:`Verification` per distinct architecture, in input order,
        each with the drift measured in its own chunk.
    """
    from hwnas.devices import Shape, create_device
    from hwnas.profiling import Task, measure_tasks

    if not archs:
        raise InvalidConfig("nothing to verify: no architectures given")
    check_int("interleave", interleave)
    recorded = predictor_device_settings(predictor)
    if threads == "predictor":
        threads = recorded["threads"]
    dtype = dtype or recorded["dtype"]
    predictor.check_device(device, override)
    options = device_options_for(device, recorded["options"])  # with --override, those the other device takes
    from hwnas.predictors.host import check_host

    if fleet is None:  # on a fleet the nodes are the measuring hosts: checked against their fingerprint below
        check_host(predictor.manifest, strict=strict)
    timing = timing_for(predictor, timing)
    ref_task, ref_then = predictor_reference(predictor)
    roles = list(roles) if roles is not None else [""] * len(archs)
    if len(roles) != len(archs):
        raise InvalidConfig(f"got {len(roles)} roles for {len(archs)} architectures")
    unique: dict[Architecture, list[str]] = {}
    for a, r in zip(archs, roles, strict=True):
        labels = unique.setdefault(a, [])
        if r and r not in labels:
            labels.append(r)
    todo = list(unique)
    predicted = np.asarray(predictor.predict(todo, seq_len=seq_len, batch_size=batch_size), dtype=np.float64)
    upper = np.asarray(predictor.predict_upper(todo, seq_len=seq_len, batch_size=batch_size), dtype=np.float64)
    shape = Shape(batch_size, seq_len)
    if fleet is not None:
        chunks = _measure_on_fleet(todo, shape, device, threads, dtype, options, timing, seed, interleave, fleet,
                                   ref_task, predictor.manifest, strict, on_status)
    else:
        dev = create_device(device, threads=threads, dtype=dtype, seed=seed, **options)
        chunks = (
            measure_tasks(dev, [Task(a, shape) for a in todo[offset: offset + interleave]], timing,
                          seed=seed * 100003 + chunk_no, on_status=on_status, reference=ref_task)
            for chunk_no, offset in enumerate(range(0, len(todo), interleave))
        )
    out: list[Verification] = []
    for offset, records in zip(range(0, len(todo), interleave), chunks, strict=True):
        chunk = todo[offset: offset + interleave]
        drift = Drift(ref_task.arch.key if ref_task else None, records[0].get("reference_ms") if ref_task else None,
                      ref_then)
        for k, (a, rec) in enumerate(zip(chunk, records, strict=True)):
            j = offset + k
            v = Verification(
                arch=a, predicted_ms=float(predicted[j]), upper_ms=float(upper[j]),
                measured_ms=float(rec["latency_ms"]), p10_ms=float(rec.get("p10_ms", float("nan"))),
                p90_ms=float(rec.get("p90_ms", float("nan"))), spread=float(rec.get("spread", float("nan"))),
                budget_ms=float(budget_ms), role=",".join(unique[a]), drift=drift,
                reference_ratio=rec.get("reference_ratio") if ref_task else None, node_id=rec.get("node_id"),
            )
            out.append(v)
            if on_record:
                on_record(v)
    return out


def _measure_on_fleet(todo, shape, device, threads, dtype, options, timing, seed, interleave, fleet, ref_task,
                      manifest, strict, on_status) -> list[list[dict[str, Any]]]:
    """``todo`` measured on a Ray cluster, as chunks of ``interleave`` records in order (see :func:`verify`)."""
    from hwnas.predictors.host import check_host
    from hwnas.profiling import Task
    from hwnas.profiling.fleet import measure_on_cluster

    if on_status:
        on_status(f"measuring {len(todo)} architecture(s) on the fleet's {device} nodes")
    records = measure_on_cluster([Task(a, shape) for a in todo], device=device, threads=threads, dtype=dtype,
                                 timing=timing, seed=seed, interleave=interleave, fleet=fleet, reference=ref_task,
                                 options=options)
    # measure_on_cluster refuses nodes of mixed kinds, so one fingerprint stands for them all
    fingerprint = records[0].get("fingerprint")
    if isinstance(fingerprint, dict):
        check_host(manifest, strict=strict, current=fingerprint)
    return [records[i: i + interleave] for i in range(0, len(records), interleave)]


def summarise(results: Sequence[Verification]) -> dict[str, Any]:
    """Share within budget and within the upper bound, and prediction errors (fractions)."""
    if not results:
        return {"n": 0}
    err = np.array([r.error for r in results])
    speeds = [r.drift.speed for r in results if r.drift is not None and r.drift.speed is not None]
    normalised = [r.within_budget_normalised for r in results if r.within_budget_normalised is not None]
    return {
        "n": len(results), "within_budget": float(np.mean([r.within_budget for r in results])),
        "within_budget_normalised": float(np.mean(normalised)) if normalised else None,
        "verdicts_disagree": int(sum(not r.verdicts_agree for r in results)),
        "speed_vs_profile": float(np.median(speeds)) if speeds else None,
        "within_upper": float(np.mean([r.within_upper for r in results])),
        "mean_abs_error": float(np.mean(np.abs(err))), "max_abs_error": float(np.max(np.abs(err))),
        "mean_error": float(np.mean(err)),
    }


def verdict_lines(measured_ms: float, budget_ms: float, drift: Drift | None, *, what: str = "measured",
                  normalised_ms: float | None = None) -> list[str]:
    """What a verification says, in plain sentences: the raw verdict, the drift, the
    normalised verdict, and, when the two verdicts disagree, that the machine's
    speed decides and a quiet re-verification is needed."""
    raw_ok = measured_ms <= budget_ms
    lines = [f"{what} {measured_ms:.3f} ms: {'within' if raw_ok else 'OVER'} the {budget_ms:g} ms budget (raw)"]
    if drift is None:
        lines.append("no reference recorded: drift unknown, only the raw verdict is available")
        return lines
    lines.append(drift.describe())
    normalised = normalised_ms if normalised_ms is not None else drift.normalise(measured_ms)
    if normalised is None:
        return lines
    norm_ok = normalised <= budget_ms
    lines.append(f"drift-normalised {normalised:.3f} ms: {'within' if norm_ok else 'OVER'} the budget")
    if norm_ok != raw_ok:
        lines.append("the raw and drift-normalised verdicts DISAGREE: the machine's speed right now decides this "
                     "one; re-verify on a quiet machine before trusting either")
    return lines


def _summary(m: Any) -> dict[str, Any]:
    out = m.summary()
    out.pop("samples_ms", None)
    return out


def measure_student(
    arch: Architecture, *, device: str, seq_len: int, batch_size: int = 1, threads: int | None = 1, dtype: str = "fp32",
    exported: str | Path | None = None, teacher: Architecture | None = None, predictor: Any = None, timing: Any = None,
    budget_ms: float | None = None, strict: bool = False, seed: int = 0, on_status: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure a trained student where it will run, through the device registry and the timing protocol.

    In one set of interleaved rounds on ``device`` at ``batch_size x seq_len``:

    * the exported artefact in ``exported`` (a folder with the Hugging Face model
      and ``model.onnx``), as the device deploys it, where the device can
      (:meth:`~hwnas.devices.base.Device.prepare_exported`);
    * the profiled encoder of the student's architecture (what the predictor
      learned), so a gap between "profiled" and "deployed" shows;
    * the teacher's architecture as a profiled encoder (the speed-up is
      encoder against encoder);
    * the predictor's reference architecture, for the drift.

    Args:
        predictor: its settings default threads/dtype/clock and the device's own options (``cuda_graphs``...);
            its reference gives the drift.
        budget_ms: when given, the verdicts (raw and drift-normalised) are added.

    Returns:
        ``measured_latency`` of a report: device, dtype, threads, clock, seq_len,
        batch_size, ``student`` (the deployed artefact, or the encoder where the device
        cannot run it), ``student_encoder``, ``deployed_vs_profiled``, ``teacher``,
        ``speedup``, ``drift`` and, with a budget, the verdicts.
    """
    from hwnas.devices import Shape, create_device
    from hwnas.profiling import measure_runners

    ref_task, ref_then = (None, None)
    options: dict[str, Any] = {}
    if predictor is not None:
        from hwnas.predictors.host import check_host

        options = device_options_for(device, predictor_device_settings(predictor)["options"])
        check_host(predictor.manifest, strict=strict)
        timing = timing_for(predictor, timing)
        ref_task, ref_then = predictor_reference(predictor)
    else:
        from hwnas.devices.timing import TimingConfig

        timing = timing or TimingConfig()
    dev = create_device(device, threads=threads, dtype=dtype, seed=seed, **options)
    shape = Shape(batch_size, seq_len)
    builders: list[tuple[str, Callable[[], Any]]] = []
    deployed_kind = None
    if exported is not None:
        deployed_kind = dev.exported_kind()
        if deployed_kind is not None:
            builders.append(("deployed", lambda: dev.prepare_exported(Path(exported), shape)))
    builders.append(("student", lambda: dev.prepare(arch, shape)))
    if teacher is not None:
        builders.append(("teacher", lambda: dev.prepare(teacher, shape)))
    if ref_task is not None:
        builders.append(("reference", lambda: dev.prepare(ref_task.arch, ref_task.shape)))
    anchor = len(builders) - 1 if ref_task is not None else None
    if on_status:
        on_status(f"measuring the student on {device} ({threads} thread(s), {dtype}, seq {seq_len}, batch {batch_size}, "
                  f"{timing.clock} clock)")
    measured = dict(zip([b[0] for b in builders],
                        [m for _, m in measure_runners(dev, builders, timing, seed=seed, anchor=anchor)], strict=True))
    encoder = _summary(measured["student"])
    encoder["measured"] = f"profiled encoder ({arch.key}, random weights) on {device}"
    ratio = (measured["deployed"] if "deployed" in measured else measured["student"]).anchor_ratio
    encoder["reference_ratio"] = measured["student"].anchor_ratio
    if "deployed" in measured:
        student = _summary(measured["deployed"])
        student["reference_ratio"] = ratio
        student["measured"] = f"{deployed_kind} on {device}"
    else:
        student = dict(encoder)
        if exported is not None:
            student["measured"] += f" (the {device} device cannot run the exported model; its encoder was measured)"
    drift = Drift(ref_task.arch.key if ref_task else None,
                  measured["reference"].median_ms if "reference" in measured else None, ref_then)
    out: dict[str, Any] = {
        "device": device, "dtype": dtype, "threads": threads, "clock": timing.clock, "seq_len": seq_len,
        "batch_size": batch_size, "student": student, "student_encoder": encoder,
        "deployed_vs_profiled": student["latency_ms"] / encoder["latency_ms"], "drift": drift.to_dict(),
        "student_normalised_ms": drift.normalise(student["latency_ms"], ratio), "fingerprint": dev.fingerprint(),
        **({"device_options": options} if options else {}),
    }
    if "teacher" in measured:
        out["teacher"] = _summary(measured["teacher"])
        out["teacher"]["measured"] = f"profiled encoder ({teacher.key}, random weights) on {device}"
        out["speedup"] = out["teacher"]["latency_ms"] / encoder["latency_ms"]
    if budget_ms is not None:
        out.update(budget_verdicts(student["latency_ms"], budget_ms, drift, out["student_normalised_ms"]))
    return out


def budget_verdicts(measured_ms: float, budget_ms: float, drift: Drift,
                    normalised_ms: float | None = None) -> dict[str, Any]:
    """``budget_ms``, ``within_budget`` (raw), ``within_budget_normalised`` (``None`` without a
    reference), ``verdicts_agree`` and the plain-text ``verdict`` lines.

    ``normalised_ms``: the drift-normalised latency when known (from the per-round
    ratio to the reference); otherwise ``measured_ms`` divided by the drift's speed."""
    normalised = normalised_ms if normalised_ms is not None and drift.reference_arch else drift.normalise(measured_ms)
    raw_ok = bool(measured_ms <= budget_ms)
    norm_ok = None if normalised is None else bool(normalised <= budget_ms)
    return {"budget_ms": budget_ms, "within_budget": raw_ok, "within_budget_normalised": norm_ok,
            "verdicts_agree": norm_ok is None or norm_ok == raw_ok,
            "verdict": verdict_lines(measured_ms, budget_ms, drift if drift.reference_arch else None,
                                     normalised_ms=normalised)}
