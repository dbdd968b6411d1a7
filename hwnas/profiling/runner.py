"""The profile runner: plan, build, measure in interleaved chunks, store.

A run is a list of *tasks*, one per (architecture, shape). Tasks are taken
in chunks of ``interleave``: every runner of a chunk is built and warmed up,
then the chunk is timed in interleaved rounds (:mod:`hwnas.devices.timing`),
and its records are appended to the store together. A kill loses at most the
chunk in progress; ``resume=True`` skips every task already in the file.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.devices.base import Device, Shape
from hwnas.devices.registry import create_device
from hwnas.devices.timing import TimingConfig, check_clock, measure_interleaved
from hwnas.errors import InvalidConfig, ProfileStoreError, check_int
from hwnas.profiling.reference import REFERENCE_FIELDS, reference_architecture
from hwnas.profiling.store import SCHEMA_VERSION, ProfileStore, record_key, stored_key
from hwnas.space import Architecture, SearchSpace, get_space, load_architectures

__all__ = ["ProfileConfig", "ProfileSummary", "Task", "chunk_tasks", "plan_tasks", "profile", "measure_tasks",
           "measure_runners", "reference_task", "check_resume", "open_profile"]


@dataclass(frozen=True)
class Task:
    arch: Architecture
    shape: Shape


@dataclass(frozen=True)
class ProfileConfig:
    """What to profile and how.

    Args:
        device: a registered device name (``hwnas devices`` lists them).
        space: built-in space name or a YAML/JSON space file.
        samples: number of architectures drawn from the space (ignored with ``archs_file``).
        seq_lens, batch_sizes: every combination is measured for every architecture.
        threads: intra-op threads (``None``: the runtime's default).
        dtype: a dtype the device supports.
        seed: seeds the sampling plan, the random weights and the round order.
        plan: ``"lhs"`` (space-filling, corners included) or ``"random"``.
        archs_file: explicit architectures instead of sampling (see
            :func:`hwnas.space.load_architectures`); checked against ``space`` when ``check_space``.
        time_budget_s: stop starting new chunks after this many seconds (the first chunk always runs).
        interleave: at most this many tasks are measured together in interleaved
            rounds (one chunk). Larger chunks spread every architecture's samples
            over a longer stretch of time, so drifts of the machine average out
            better, at the cost of more memory and more work lost on a kill.
        max_chunk_mb: a chunk also stops growing when its models' weights would
            exceed this many MiB (counted twice for runtimes that copy them).
        reference: time the space's reference architecture in every chunk and
            store it with each record (``reference_ms``), so later measurements
            can tell the machine's drift from a real difference.
        timing: the timing protocol; its ``clock`` is recorded with every record.
        device_options: the backend's own options (``Device.option_names()``), e.g.
            ``{"cuda_graphs": True}`` for ``cuda``; recorded in every record's ``settings``.
    """

    device: str = "cpu"
    space: str = "small"
    samples: int = 200
    seq_lens: tuple[int, ...] = (128,)
    batch_sizes: tuple[int, ...] = (1,)
    threads: int | None = 1
    dtype: str = "fp32"
    seed: int = 0
    plan: str = "lhs"
    archs_file: str | None = None
    check_space: bool = True
    time_budget_s: float | None = None
    interleave: int = 32
    max_chunk_mb: float = 3072.0
    timing: TimingConfig = field(default_factory=TimingConfig)
    reference: bool = True
    device_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int("samples", self.samples)
        check_int("interleave", self.interleave)
        if not self.max_chunk_mb > 0:
            raise InvalidConfig(f"max_chunk_mb must be > 0; got {self.max_chunk_mb!r}")
        if self.plan not in ("lhs", "random"):
            raise InvalidConfig(f"plan must be 'lhs' or 'random'; got {self.plan!r}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise InvalidConfig(f"time_budget_s must be > 0; got {self.time_budget_s!r}")
        for name in ("seq_lens", "batch_sizes"):
            values = tuple(getattr(self, name))
            if not values:
                raise InvalidConfig(f"{name} must list at least one value")
            object.__setattr__(self, name, values)
            for v in values:
                Shape(1, v) if name == "seq_lens" else Shape(v, 1)

    def shapes(self) -> list[Shape]:
        return [Shape(b, s) for b, s in itertools.product(self.batch_sizes, self.seq_lens)]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seq_lens"] = list(self.seq_lens)
        out["batch_sizes"] = list(self.batch_sizes)
        return out


@dataclass
class ProfileSummary:
    """What a run did. Times in seconds; latencies in milliseconds."""

    out: str
    planned: int
    skipped: int
    measured: int
    stopped: str = "done"  # "done", "time budget", "interrupted"
    latency_ms_min: float = float("nan")
    latency_ms_max: float = float("nan")
    median_spread: float = float("nan")
    noisy: int = 0
    build_s: float = 0.0
    export_s: float = 0.0
    warmup_s: float = 0.0
    timed_s: float = 0.0
    wall_s: float = 0.0
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def remaining(self) -> int:
        return self.planned - self.skipped - self.measured


def plan_tasks(config: ProfileConfig) -> tuple[SearchSpace | None, list[Task]]:
    """The full, deterministic task list of ``config`` (same seed: same list, so resume is exact)."""
    space = get_space(config.space) if config.space else None
    if config.archs_file:
        archs = load_architectures(config.archs_file)
        if space is not None and config.check_space:
            archs = [space.validate(a) for a in archs]
    else:
        if space is None:
            raise InvalidConfig("give a space to sample from or an architecture file")
        archs = space.sample(config.samples, plan=config.plan, seed=config.seed)
    seen: set[Architecture] = set()
    unique = [a for a in archs if not (a in seen or seen.add(a))]
    return space, [Task(a, s) for a in unique for s in config.shapes()]


def reference_task(config: ProfileConfig, space: SearchSpace | None, tasks: Sequence[Task]) -> Task | None:
    """The reference timed in every chunk of ``config`` (``None`` when ``config.reference`` is off).

    Its shape is the first of ``config.shapes()``; its architecture is
    :func:`~hwnas.profiling.reference.reference_architecture` of the space (or
    of the listed architectures when profiling a file without a space).
    """
    if not config.reference or not tasks:
        return None
    arch = reference_architecture(space, [t.arch for t in tasks])
    return Task(arch, config.shapes()[0])


def _task_key(task: Task, device: Device) -> str:
    return record_key(task.arch, task.shape.batch_size, task.shape.seq_len, device.name, device.dtype, device.threads)


def measure_runners(
    device: Device, builders: Sequence[tuple[str, Callable[[], Any]]], timing: TimingConfig | None = None, *,
    seed: int = 0, on_status: Callable[[str], None] | None = None, anchor: int | None = None,
) -> list[tuple[Any, Any]]:
    """Build runners with ``builders`` (``(label, () -> Runner)``) and measure them together.

    ``anchor``: index of the reference runner; every other measurement then gets
    its per-round ratio to it (:attr:`~hwnas.devices.timing.Measurement.anchor_ratio`).

    The one measuring path: threads pinned by the device, the clock checked
    against the device, every runner warmed up and timed in the same
    interleaved rounds (:func:`~hwnas.devices.timing.measure_interleaved`).
    Returns ``(runner, Measurement)`` per builder, in order; runners are closed.
    """
    timing = timing or TimingConfig()
    check_clock(device, timing.clock)
    runners = []
    try:
        with device.pinned():
            for label, build in builders:
                if on_status:
                    on_status(f"building {label}")
                runners.append(build())
            if on_status:
                on_status(f"measuring {len(runners)} model(s) in interleaved rounds")
            measurements = measure_interleaved(runners, timing, seed=seed, anchor=anchor)
    finally:
        for r in runners:
            r.close()
    return list(zip(runners, measurements, strict=True))


def measure_tasks(
    device: Device, tasks: Sequence[Task], timing: TimingConfig | None = None, *, seed: int = 0,
    extra: dict[str, Any] | None = None, on_status: Callable[[str], None] | None = None, reference: Task | None = None,
) -> list[dict[str, Any]]:
    """Build, warm up and measure ``tasks`` together (one interleaved chunk).

    Args:
        reference: also time this task in the same rounds and store its median
            with every record as ``reference_ms`` (see :mod:`hwnas.profiling.reference`).

    Returns one store record per task, in order (the reference has none of its
    own). Runners are closed on exit.
    """
    timing = timing or TimingConfig()
    every = list(tasks) + ([reference] if reference is not None else [])
    builders = [(f"{t.arch} @ {t.shape}", (lambda t=t: device.prepare(t.arch, t.shape))) for t in every]
    measured = measure_runners(device, builders, timing, seed=seed, on_status=on_status,
                               anchor=len(every) - 1 if reference is not None else None)
    ref_fields: dict[str, Any] = dict.fromkeys(REFERENCE_FIELDS)
    if reference is not None:
        ref_fields = {"reference_arch": reference.arch.key, "reference_batch_size": reference.shape.batch_size,
                      "reference_seq_len": reference.shape.seq_len, "reference_ms": measured[-1][1].median_ms}
    fingerprint = device.fingerprint()
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records = []
    for task, (runner, m) in zip(tasks, measured[: len(tasks)], strict=True):  # the reference, if any, is last
        record: dict[str, Any] = {
            "schema": SCHEMA_VERSION, **task.arch.as_dict(), "batch_size": task.shape.batch_size,
            "seq_len": task.shape.seq_len, "device": device.name, "dtype": device.dtype, "threads": device.threads,
            "params": task.arch.num_parameters(device.vocab_size, device.max_positions),
        }
        record.update(m.summary())
        record.update(build_s=runner.build_s, export_s=runner.export_s, timestamp=stamp)
        record["clock"] = timing.clock
        record.update(ref_fields)
        record["reference_ratio"] = m.anchor_ratio if reference is not None else None
        record["settings"] = device.settings()
        record["fingerprint"] = fingerprint
        if extra:
            record.update(extra)
        records.append(record)
    return records


def profile(
    config: ProfileConfig, out: str | Path, *, resume: bool = False, on_start: Callable[[int, int], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None, on_status: Callable[[str], None] | None = None,
) -> ProfileSummary:
    """Profile ``config`` into the JSON Lines file ``out``.

    Args:
        resume: continue an existing file, skipping every task it already holds.
            Without it an existing non-empty file is refused (never overwritten).
        on_start: called once with ``(tasks to measure, tasks already done)``.
        on_record: called with every record once it is safely on disk.
        on_status: called with short status lines (building, measuring).

    Raises:
        ProfileStoreError: ``out`` exists without ``resume``, is unwritable, holds
            measurements of another device, settings or clock, or another process
            is writing it (one writer per profile: :meth:`ProfileStore.lock`).
        KeyboardInterrupt: re-raised after the summary is complete; completed
            chunks are on disk.
    """
    store = ProfileStore(out)
    store.check_writable()
    with store.lock():
        return _profile_locked(config, out, store, resume, on_start, on_record, on_status)


def check_resume(existing: Sequence[Mapping[str, Any]], out: str | Path, device: Device, clock: str | None) -> None:
    """Refuse to continue a profile measured with another device, dtype, thread count, device option (``cuda_graphs``
    ...) or clock (``None``: any)."""
    options = device.options()
    for r in existing:
        asked = {"device": device.name, "dtype": device.dtype, "threads": device.threads}
        mismatch = [f"{k}={r.get(k)!r} (asked {v!r})" for k, v in asked.items() if r.get(k, v) != v]
        settings = r.get("settings") if isinstance(r.get("settings"), dict) else {}
        mismatch += [f"{k}={settings.get(k)!r} (asked {v!r})" for k, v in options.items() if settings.get(k, v) != v]
        if clock is not None and r.get("clock", "wall") != clock:
            mismatch.append(f"clock={r.get('clock', 'wall')!r} (asked {clock!r})")
        if mismatch:
            raise ProfileStoreError(f"{out} holds measurements with {', '.join(mismatch)}; resume with the same "
                                    "settings or write to another --out")


def open_profile(store: ProfileStore, resume: bool) -> list[dict[str, Any]]:
    """The records already in ``store``; an existing profile is refused unless ``resume``."""
    if not store.exists():
        return []
    if not resume:
        raise ProfileStoreError(f"{store.path} already exists; pass --resume to continue it, or choose another --out")
    return store.records()


def _profile_locked(config: ProfileConfig, out: str | Path, store: ProfileStore, resume: bool,
                    on_start: Callable[[int, int], None] | None, on_record: Callable[[dict[str, Any]], None] | None,
                    on_status: Callable[[str], None] | None) -> ProfileSummary:
    existing = open_profile(store, resume)
    space, tasks = plan_tasks(config)
    device = create_device(config.device, threads=config.threads, dtype=config.dtype, seed=config.seed,
                           **config.device_options)
    check_resume(existing, out, device, config.timing.clock)
    reference = reference_task(config, space, tasks)
    done = {stored_key(r) for r in existing}
    todo = [t for t in tasks if _task_key(t, device) not in done]
    summary = ProfileSummary(out=str(out), planned=len(tasks), skipped=len(tasks) - len(todo), measured=0)
    if on_start:
        on_start(len(todo), summary.skipped)
    run_id = uuid.uuid4().hex[:12]
    extra = {"space": space.name if space else None, "run_id": run_id}
    start = time.perf_counter()
    try:
        for chunk_no, chunk in enumerate(chunk_tasks(todo, config.interleave, config.max_chunk_mb, device.dtype)):
            if chunk_no and config.time_budget_s is not None and time.perf_counter() - start >= config.time_budget_s:
                summary.stopped = "time budget"
                break
            records = measure_tasks(device, chunk, config.timing, seed=config.seed * 100003 + chunk_no,
                                    extra=extra, on_status=on_status, reference=reference)
            store.append(records)
            summary.measured += len(records)
            summary.records.extend(records)
            if on_record:
                for r in records:
                    on_record(r)
    except KeyboardInterrupt:
        summary.stopped = "interrupted"
        raise
    finally:
        summary.wall_s = time.perf_counter() - start
        _fill_summary(summary)
    return summary


def chunk_tasks(tasks: Sequence[Task], interleave: int, max_chunk_mb: float, dtype: str = "fp32") -> list[list[Task]]:
    """Split ``tasks`` in order into chunks of at most ``interleave`` tasks and ``max_chunk_mb`` of weights."""
    bytes_per_param = 2 if dtype in ("fp16", "bf16") else 4
    chunks: list[list[Task]] = []
    current: list[Task] = []
    current_mb = 0.0
    for task in tasks:
        # Weights are held twice by runtimes that copy them (ONNX Runtime, TensorRT): count them twice.
        mb = 2 * task.arch.num_parameters() * bytes_per_param / 2**20
        if current and (len(current) >= interleave or current_mb + mb > max_chunk_mb):
            chunks.append(current)
            current, current_mb = [], 0.0
        current.append(task)
        current_mb += mb
    if current:
        chunks.append(current)
    return chunks


def _fill_summary(summary: ProfileSummary) -> None:
    rs = summary.records
    if not rs:
        return
    lat = np.array([r["latency_ms"] for r in rs])
    summary.latency_ms_min, summary.latency_ms_max = float(lat.min()), float(lat.max())
    summary.median_spread = float(np.median([r["spread"] for r in rs]))
    summary.noisy = int(sum(bool(r["noisy"]) for r in rs))
    for k in ("build_s", "export_s", "warmup_s", "timed_s"):
        setattr(summary, k, float(sum(r[k] for r in rs)))
