"""The timing protocol, one implementation for every backend.

Rules (see docs/devices.md, "timing", and ``torch.utils.benchmark``):

* **Warm up until steady**: run single calls until the median of the last five
  is within ``warmup_tolerance`` of the five before (first ONNX Runtime calls can
  be 1000x slower than steady state, the first XLA call compiles).
* **Blocks**: time ``number`` back-to-back calls per block, with ``number``
  chosen so one block lasts at least ``block_min_s``; the clock's own cost is then
  negligible. The device is synchronised before reading the clock.
* **Interleave**: each round times one block of every architecture still being
  measured, in a fresh random order, so slow drifts of a shared machine hit all
  architectures alike instead of biasing whichever was measured during the drift.
* **Stop when tight**: an architecture leaves the rounds once it has
  ``min_rounds`` blocks and the 95% confidence interval of its median is within
  ``target_rel_ci`` of the median, or when its timed time reaches ``max_time_s``.
* **Re-measure the noisy**: a measurement whose IQR/median exceeds ``max_spread``
  is measured again in a second interleaved pass and the tighter of the two is
  kept; if both are wide it is flagged ``noisy``.
* The garbage collector is off while timing; thread pinning is the device's
  :meth:`~hwnas.devices.base.Device.pinned` context. Raw block times are kept.
* **Clock**: ``"wall"`` (the default) reads ``time.perf_counter`` through the
  runner's :meth:`~hwnas.devices.base.Runner.time_block`. ``"thread_cpu"`` reads
  the CPU time of the measuring thread (``time.thread_time``): with one
  intra-op thread on a host device all the work runs in that thread, so the
  time the process spends descheduled by other load on a shared machine is
  left out. It is only meaningful for one-thread host devices (see
  :func:`check_clock`).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, check_int

__all__ = [
    "TimingConfig", "Measurement", "warm_up", "measure", "measure_interleaved", "measurement_from_dict", "gc_disabled",
    "CLOCKS", "check_clock", "time_block",
]

#: Clocks a block can be timed with (see the module docstring).
CLOCKS: tuple[str, ...] = ("wall", "thread_cpu")


@dataclass(frozen=True)
class TimingConfig:
    """Knobs of the timing protocol. Times in seconds; ratios are fractions."""

    warmup_min_runs: int = 5
    warmup_min_s: float = 0.1
    warmup_max_s: float = 10.0
    warmup_tolerance: float = 0.05
    block_min_s: float = 0.02
    min_rounds: int = 15
    max_rounds: int = 200
    target_rel_ci: float = 0.01
    max_time_s: float = 4.0
    max_spread: float = 0.10
    remeasure: bool = True
    disable_gc: bool = True
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise InvalidConfig(f"TimingConfig.clock must be one of {', '.join(CLOCKS)}; got {self.clock!r}")
        for name in ("warmup_min_runs", "min_rounds", "max_rounds"):
            check_int(f"TimingConfig.{name}", getattr(self, name))
        for name in ("warmup_min_s", "warmup_max_s", "block_min_s", "max_time_s", "target_rel_ci", "max_spread", "warmup_tolerance"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0 or not math.isfinite(v):
                raise InvalidConfig(f"TimingConfig.{name} must be a positive number; got {v!r}")
        if self.min_rounds > self.max_rounds:
            raise InvalidConfig(
                f"TimingConfig.min_rounds must be <= max_rounds; got min_rounds={self.min_rounds}, max_rounds={self.max_rounds}"
            )
        if self.warmup_min_s > self.warmup_max_s:
            raise InvalidConfig(
                f"TimingConfig.warmup_min_s must be <= warmup_max_s; got {self.warmup_min_s} > {self.warmup_max_s}"
            )

    @classmethod
    def quick(cls, **overrides: Any) -> TimingConfig:
        """A fast, looser protocol for tests and smoke runs (not for datasets)."""
        values: dict[str, Any] = dict(warmup_min_runs=2, warmup_min_s=0.01, block_min_s=0.002, min_rounds=3,
                                      max_rounds=10, max_time_s=0.2, target_rel_ci=0.05)
        values.update(overrides)
        return cls(**values)


@dataclass
class Measurement:
    """The timed blocks of one runner, with statistics computed on demand.

    ``samples_ms`` holds one value per block: the block's time divided by
    ``number`` (calls per block), in milliseconds.
    """

    samples_ms: list[float]
    number: int
    warmup_runs: int = 0
    warmup_s: float = 0.0
    timed_s: float = 0.0
    remeasured: bool = False
    warnings: list[str] = field(default_factory=list)
    max_spread: float = 0.10
    #: the interleaved round of every sample (parallel to ``samples_ms``)
    round_ids: list[int] = field(default_factory=list, repr=False)
    #: median over shared rounds of this runner's block time divided by the anchor's
    #: (see :func:`measure_interleaved`'s ``anchor``); ``None`` without an anchor
    anchor_ratio: float | None = None

    def _q(self, q: float) -> float:
        return float(np.percentile(self.samples_ms, q)) if self.samples_ms else float("nan")

    #: percentiles of the samples, ms
    median_ms = property(lambda self: self._q(50))
    p10_ms = property(lambda self: self._q(10))
    p25_ms = property(lambda self: self._q(25))
    p75_ms = property(lambda self: self._q(75))
    p90_ms = property(lambda self: self._q(90))

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.samples_ms)) if self.samples_ms else float("nan")

    @property
    def min_ms(self) -> float:
        return float(min(self.samples_ms)) if self.samples_ms else float("nan")

    @property
    def iqr_ms(self) -> float:
        return self.p75_ms - self.p25_ms

    @property
    def spread(self) -> float:
        """IQR divided by the median."""
        return self.iqr_ms / self.median_ms if self.samples_ms else float("nan")

    @property
    def rel_ci(self) -> float:
        """Half-width of a ~95% confidence interval of the median, relative to the median.

        Distribution-free: the interval between order statistics
        ``n/2 -+ 0.98 sqrt(n)`` (a binomial bound on the median's rank).
        """
        return _median_rel_ci(self.samples_ms)

    @property
    def noisy(self) -> bool:
        return bool(self.spread > self.max_spread)

    def summary(self) -> dict[str, Any]:
        """Statistics, units in the names; what the profile store records."""
        return {
            "latency_ms": self.median_ms, "mean_ms": self.mean_ms, "min_ms": self.min_ms, "p10_ms": self.p10_ms,
            "p25_ms": self.p25_ms, "p75_ms": self.p75_ms, "p90_ms": self.p90_ms, "iqr_ms": self.iqr_ms,
            "spread": self.spread, "rel_ci": self.rel_ci, "noisy": self.noisy, "remeasured": self.remeasured,
            "n_blocks": len(self.samples_ms), "calls_per_block": self.number, "warmup_runs": self.warmup_runs,
            "warmup_s": self.warmup_s, "timed_s": self.timed_s, "samples_ms": [round(x, 6) for x in self.samples_ms],
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        return (
            f"Measurement(median={self.median_ms:.4g} ms, IQR={self.iqr_ms:.3g} ms, "
            f"blocks={len(self.samples_ms)}x{self.number}{', NOISY' if self.noisy else ''})"
        )


def _median_rel_ci(samples: Sequence[float]) -> float:
    n = len(samples)
    if n < 3:
        return float("inf")
    x = np.sort(np.asarray(samples))
    half = 0.98 * math.sqrt(n)
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)) - 1)
    med = float(np.median(x))
    return float((x[hi] - x[lo]) / (2 * med)) if med > 0 else float("inf")


@contextmanager
def gc_disabled(enabled: bool = True) -> Iterator[None]:
    """Turn the garbage collector off (collecting once first), then restore it."""
    if not enabled:
        yield
        return
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def check_clock(device: Any, clock: str) -> None:
    """Refuse ``clock`` where it would not measure the work.

    ``thread_cpu`` counts only the measuring thread's CPU time, so it needs a
    host device that runs everything in that thread: the device's class sets
    ``thread_clock = True`` and it is pinned to one thread.

    Raises:
        InvalidConfig: an unknown clock, or ``thread_cpu`` on another device or thread count.
    """
    if clock not in CLOCKS:
        raise InvalidConfig(f"clock must be one of {', '.join(CLOCKS)}; got {clock!r}")
    if clock == "thread_cpu":
        if not getattr(device, "thread_clock", False):
            raise InvalidConfig(f"clock 'thread_cpu' measures one host thread; device {device.name!r} runs work "
                                "elsewhere (use --clock wall, or a cpu/onnxruntime device)")
        if device.threads != 1:
            raise InvalidConfig(f"clock 'thread_cpu' measures one thread; it needs threads=1, got threads={device.threads}")


def time_block(runner: Any, number: int, clock: str = "wall") -> float:
    """Seconds of ``number`` back-to-back calls of ``runner`` on ``clock``.

    ``"wall"`` defers to the runner's own :meth:`time_block` (CUDA events where
    the backend has them); ``"thread_cpu"`` reads ``time.thread_time`` around
    the calls, synchronising first.
    """
    if clock == "wall":
        return runner.time_block(number)
    runner.synchronize()
    start = time.thread_time()
    for _ in range(number):
        runner.run()
    runner.synchronize()
    return time.thread_time() - start


def warm_up(runner: Any, config: TimingConfig) -> tuple[int, float, float]:
    """Run single calls until steady. Returns ``(runs, seconds, steady per-call seconds)``."""
    times: list[float] = []
    start = time.perf_counter()
    while True:
        times.append(time_block(runner, 1, config.clock))
        elapsed = time.perf_counter() - start
        if elapsed >= config.warmup_max_s:
            break
        if len(times) >= max(config.warmup_min_runs, 10) and elapsed >= config.warmup_min_s:
            last, before = np.median(times[-5:]), np.median(times[-10:-5])
            if abs(last - before) <= config.warmup_tolerance * before:
                break
    per_call = float(np.median(times[-5:]))
    return len(times), time.perf_counter() - start, per_call


def _calls_per_block(per_call_s: float, config: TimingConfig) -> int:
    if per_call_s <= 0:
        return 1000
    return max(1, int(math.ceil(config.block_min_s / per_call_s)))


def measure_interleaved(
    runners: Sequence[Any], config: TimingConfig | None = None, *, seed: int = 0,
    on_warm: Callable[[int], None] | None = None, on_done: Callable[[int], None] | None = None,
    anchor: int | None = None,
) -> list[Measurement]:
    """Measure several runners with interleaved rounds.

    With ``anchor`` (the index of a reference runner), the anchor is timed in
    every round any other runner is timed in, and each other runner's
    :attr:`Measurement.anchor_ratio` is the median, over those rounds, of its
    per-call time divided by the anchor's in the same round. A slowdown of the
    machine that lasts a round or more hits both alike and cancels in the ratio.

    Args:
        runners: objects with ``time_block(number) -> seconds`` and ``after_block()``
            (see :class:`hwnas.devices.base.Runner`).
        config: the protocol; defaults to :class:`TimingConfig`.
        seed: seeds the order of every round.
        on_warm: called with the runner's index after its warm-up.
        on_done: called with the runner's index when its measurement is final.

    Returns:
        One :class:`Measurement` per runner, in the given order.
    """
    config = config or TimingConfig()
    rng = np.random.default_rng(seed)
    with gc_disabled(config.disable_gc):
        warm: list[tuple[int, float, float]] = []
        for i, runner in enumerate(runners):
            warm.append(warm_up(runner, config))
            if on_warm:
                on_warm(i)
        numbers = [_calls_per_block(w[2], config) for w in warm]
        anchor_ms: dict[int, float] = {}
        first = _rounds(runners, numbers, config, rng, list(range(len(runners))), anchor, 0, anchor_ms)
        results = [first[i] for i in range(len(runners))]
        for i, (runs, secs, _) in enumerate(warm):
            results[i].warmup_runs, results[i].warmup_s = runs, secs
        if config.remeasure:
            noisy = [i for i, m in enumerate(results) if m.noisy]
            if noisy:
                passing = noisy if anchor is None or anchor in noisy else noisy + [anchor]
                again = _rounds(runners, numbers, config, rng, passing, anchor, config.max_rounds, anchor_ms)
                for i in noisy:
                    second = again[i]
                    keep = second if second.spread < results[i].spread else results[i]
                    keep.remeasured = True
                    keep.warmup_runs, keep.warmup_s = results[i].warmup_runs, results[i].warmup_s
                    keep.timed_s = results[i].timed_s + second.timed_s
                    results[i] = keep
        if anchor is not None:
            for i, m in enumerate(results):
                if i != anchor:
                    ratios = [x / anchor_ms[r] for x, r in zip(m.samples_ms, m.round_ids, strict=True) if anchor_ms.get(r)]
                    m.anchor_ratio = float(np.median(ratios)) if ratios else None
    if on_done:
        for i in range(len(runners)):
            on_done(i)
    return results


def _rounds(
    runners: Sequence[Any], numbers: Sequence[int], config: TimingConfig, rng: np.random.Generator, indices: list[int],
    anchor: int | None = None, round_offset: int = 0, anchor_ms: dict[int, float] | None = None,
) -> dict[int, Measurement]:
    results = {i: Measurement(samples_ms=[], number=numbers[i], max_spread=config.max_spread) for i in indices}
    active = list(indices)
    for round_no in range(config.max_rounds):
        if not active:
            break
        for i in rng.permutation(active):
            i = int(i)
            seconds = time_block(runners[i], numbers[i], config.clock)
            m = results[i]
            m.samples_ms.append(seconds * 1e3 / numbers[i])
            m.round_ids.append(round_offset + round_no)
            if i == anchor and anchor_ms is not None:
                anchor_ms[round_offset + round_no] = m.samples_ms[-1]
            m.timed_s += seconds
            warning = runners[i].after_block()
            if warning and warning not in m.warnings:
                m.warnings.append(warning)
        if round_no + 1 >= config.min_rounds:
            going = [
                i for i in active if results[i].rel_ci > config.target_rel_ci and results[i].timed_s < config.max_time_s
            ]
            if anchor in active and anchor not in going and any(i != anchor for i in going):
                going.append(anchor)  # the anchor stays while anything else is still timed
            active = going
    return results


def measure(runner: Any, config: TimingConfig | None = None) -> Measurement:
    """Measure one runner (warm-up, then blocks until tight). See :func:`measure_interleaved`."""
    return measure_interleaved([runner], config)[0]


def measurement_from_dict(data: dict[str, Any]) -> Measurement:
    """Rebuild a :class:`Measurement` from :meth:`Measurement.summary` output."""
    return Measurement(
        samples_ms=list(data["samples_ms"]), number=int(data.get("calls_per_block", 1)),
        warmup_runs=int(data.get("warmup_runs", 0)), warmup_s=float(data.get("warmup_s", 0.0)),
        timed_s=float(data.get("timed_s", 0.0)), remeasured=bool(data.get("remeasured", False)),
        warnings=list(data.get("warnings", [])),
    )

