"""The timing protocol, driven by real runners whose cost is known."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

from hwnas.devices.base import Runner
from hwnas.devices.timing import Measurement, TimingConfig, measure, measure_interleaved, measurement_from_dict
from hwnas.errors import InvalidConfig


class SpinRunner(Runner):
    """Busy-waits a fixed time per call; records when it ran and whether the GC was on."""

    def __init__(self, seconds: float, name: str, log: list, first_calls_slow: int = 0):
        self.seconds = seconds
        self.name = name
        self.log = log
        self.calls = 0
        self.first_calls_slow = first_calls_slow
        self.gc_seen = set()

    def run(self) -> None:
        self.calls += 1
        self.gc_seen.add(gc.isenabled())
        cost = self.seconds * (20 if self.calls <= self.first_calls_slow else 1)
        end = time.perf_counter() + cost
        while time.perf_counter() < end:
            pass

    def time_block(self, number: int) -> float:
        self.log.append(self.name)
        return super().time_block(number)


def test_measurement_statistics_match_numpy():
    samples = [1.0, 2.0, 3.0, 4.0, 100.0]
    m = Measurement(samples_ms=samples, number=1)
    assert m.median_ms == 3.0
    assert m.mean_ms == pytest.approx(22.0)
    assert m.p25_ms == pytest.approx(np.percentile(samples, 25))
    assert m.iqr_ms == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25))
    assert m.p90_ms == pytest.approx(np.percentile(samples, 90))
    assert m.min_ms == 1.0
    assert m.spread == pytest.approx(m.iqr_ms / 3.0)
    s = m.summary()
    assert s["latency_ms"] == 3.0 and s["n_blocks"] == 5 and s["samples_ms"] == samples
    again = measurement_from_dict(s)
    assert again.median_ms == m.median_ms and again.number == m.number


def test_relative_ci_shrinks_with_more_samples():
    rng = np.random.default_rng(0)
    few = Measurement(samples_ms=list(10 + rng.normal(0, 0.5, 10)), number=1)
    many = Measurement(samples_ms=list(10 + rng.normal(0, 0.5, 400)), number=1)
    assert many.rel_ci < few.rel_ci
    assert Measurement(samples_ms=[1.0, 2.0], number=1).rel_ci == float("inf")


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(min_rounds=0), "min_rounds must be an integer >= 1"),
        (dict(min_rounds=5, max_rounds=3), "min_rounds must be <= max_rounds"),
        (dict(block_min_s=0), "block_min_s must be a positive number"),
        (dict(target_rel_ci=float("nan")), "target_rel_ci must be a positive number"),
        (dict(warmup_min_s=5, warmup_max_s=1), "warmup_min_s must be <= warmup_max_s"),
    ],
)
def test_timing_config_validation(kwargs, fragment):
    with pytest.raises(InvalidConfig, match=fragment):
        TimingConfig(**kwargs)


def test_measure_recovers_known_cost_and_disables_gc():
    log: list = []
    runner = SpinRunner(0.001, "a", log)
    config = TimingConfig(warmup_min_runs=3, warmup_min_s=0.005, block_min_s=0.005, min_rounds=5, max_rounds=20, max_time_s=0.5)
    m = measure(runner, config)
    assert m.number >= 4  # blocks of >= 5 ms from 1 ms calls
    assert 0.9 <= m.min_ms <= m.median_ms
    assert m.median_ms < 3.0  # a 1 ms spin; generous for a loaded machine
    assert runner.gc_seen == {False}
    assert gc.isenabled()


def test_warmup_runs_until_steady_and_is_not_timed():
    log: list = []
    runner = SpinRunner(0.0005, "a", log, first_calls_slow=4)
    config = TimingConfig(warmup_min_runs=3, warmup_min_s=0.001, block_min_s=0.002, min_rounds=3, max_rounds=10, max_time_s=0.3)
    m = measure(runner, config)
    # warm-up never stops before 10 runs; with 4 slow calls first, the median of the earlier window of five
    # stays slow until run 12 (runs 3-7 hold two slow calls), so steadiness came from the data, not the minimum
    assert m.warmup_runs >= 12
    assert m.median_ms < 0.0005 * 20 * 1e3 / 2  # the 10 ms first calls never reach the timed blocks


def test_rounds_are_interleaved():
    log: list = []
    runners = [SpinRunner(0.0003, n, log) for n in "abc"]
    config = TimingConfig(warmup_min_runs=2, warmup_min_s=0.001, block_min_s=0.001, min_rounds=4, max_rounds=4, max_time_s=1.0, remeasure=False)
    measure_interleaved(runners, config, seed=1)
    timed = [name for name in log if True]
    # after the warm-up (single calls, one runner at a time) come 4 rounds with each runner once per round
    rounds = timed[-12:]
    for r in range(4):
        assert sorted(rounds[3 * r: 3 * r + 3]) == ["a", "b", "c"]


def test_noisy_measurements_are_remeasured_and_flagged():
    class Jittery(SpinRunner):
        def run(self):
            self.calls += 1
            cost = self.seconds * (1 + 3 * (self.calls % 2))  # every other call 4x slower
            end = time.perf_counter() + cost
            while time.perf_counter() < end:
                pass

    log: list = []
    runner = Jittery(0.0005, "j", log)
    config = TimingConfig(warmup_min_runs=2, warmup_min_s=0.001, warmup_max_s=0.05, block_min_s=0.0001,
                          min_rounds=6, max_rounds=12, max_time_s=0.2, max_spread=0.05)
    m = measure(runner, config)
    assert m.remeasured
    assert m.noisy  # spread stays above 5%: flagged rather than hidden
    assert m.summary()["noisy"] is True
