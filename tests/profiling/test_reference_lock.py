"""The reference architecture in every chunk, the clock in every record, and one writer per profile."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from hwnas.devices.timing import TimingConfig, measure_interleaved
from hwnas.errors import InvalidConfig, ProfileStoreError
from hwnas.profiling import fit_reference, profile, read_records, reference_architecture
from hwnas.profiling.store import ProfileStore
from hwnas.space import Architecture, SearchSpace, get_space
from tests.profiling.mini import MINI_SPACE
from tests.profiling.mini import mini_config as _config


def test_reference_is_the_middle_of_every_dimension():
    assert reference_architecture(get_space("tiny")) == Architecture(2, 160, 2, 512)
    assert reference_architecture(get_space("small")) == Architecture(4, 288, 4, 1024)
    listed = [Architecture(1, 64, 2, 64), Architecture(3, 128, 4, 256), Architecture(2, 96, 2, 128)]
    assert reference_architecture(None, listed) == Architecture(2, 96, 2, 128)


@pytest.mark.slow
def test_every_record_carries_the_reference_of_its_chunk_and_the_clock(space_file, tmp_path):
    out = tmp_path / "p.jsonl"
    profile(_config(space_file), out)
    records = list(read_records(out))
    ref = reference_architecture(SearchSpace.from_dict(MINI_SPACE))
    assert len(records) == 4
    for r in records:
        assert r["clock"] == "wall"
        assert r["reference_arch"] == ref.key
        assert (r["reference_batch_size"], r["reference_seq_len"]) == (1, 8)
        assert r["reference_ms"] > 0 and r["reference_ratio"] > 0
    # interleave=2: two chunks, each with its own reference measurement shared by its two records
    assert records[0]["reference_ms"] == records[1]["reference_ms"]
    assert records[2]["reference_ms"] == records[3]["reference_ms"]
    fitted = fit_reference(records)
    assert fitted["arch"] == ref.key and fitted["n_chunks"] == len({r["reference_ms"] for r in records})
    assert fitted["min_ms"] <= fitted["latency_ms"] <= fitted["max_ms"]


def test_old_records_without_reference_still_load(tmp_path):
    assert fit_reference([{"latency_ms": 1.0}, {"latency_ms": 2.0, "reference_ms": None}]) is None


def test_thread_cpu_clock_is_recorded_and_resume_refuses_another_clock(space_file, tmp_path):
    out = tmp_path / "p.jsonl"
    profile(_config(space_file, samples=1, timing=TimingConfig.quick(clock="thread_cpu")), out)
    (r,) = list(read_records(out))
    assert r["clock"] == "thread_cpu" and r["latency_ms"] > 0
    before = out.read_bytes()
    with pytest.raises(ProfileStoreError, match=r"clock='thread_cpu' \(asked 'wall'\)"):
        profile(_config(space_file, samples=2), out, resume=True)
    assert out.read_bytes() == before


def test_thread_cpu_clock_needs_one_thread(space_file, tmp_path):
    with pytest.raises(InvalidConfig, match="needs threads=1, got threads=2"):
        profile(_config(space_file, samples=1, threads=2, timing=TimingConfig.quick(clock="thread_cpu")),
                tmp_path / "p.jsonl")
    with pytest.raises(InvalidConfig, match="clock must be one of wall, thread_cpu"):
        TimingConfig(clock="cpu")


class _SleepRunner:
    """Sleeps instead of computing: wall time passes, the thread's CPU time does not."""

    build_s = export_s = 0.0

    def run(self):
        time.sleep(0.002)

    def synchronize(self):
        pass

    def time_block(self, number):
        start = time.perf_counter()
        for _ in range(number):
            self.run()
        return time.perf_counter() - start

    def after_block(self):
        return None


def test_thread_cpu_clock_leaves_out_time_spent_off_the_cpu():
    cfg = dict(warmup_min_runs=2, warmup_min_s=0.01, warmup_max_s=0.2, block_min_s=0.004, min_rounds=3, max_rounds=3)
    (wall,) = measure_interleaved([_SleepRunner()], TimingConfig(**cfg))
    (cpu,) = measure_interleaved([_SleepRunner()], TimingConfig(**cfg, clock="thread_cpu"))
    assert wall.median_ms >= 2.0
    assert cpu.median_ms < 1.0


_HOLD = """
import sys, time
from hwnas.profiling.store import ProfileStore
with ProfileStore(sys.argv[1]).lock():
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_lock_held_by_a_live_process_is_refused_and_a_dead_ones_taken_over(space_file, tmp_path):
    out = tmp_path / "p.jsonl"
    profile(_config(space_file, samples=1), out)
    before = out.read_bytes()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ProfileStoreError, match=rf"being written by another process \(PID {holder.pid}\b"):
            profile(_config(space_file, samples=2), out, resume=True)
        assert out.read_bytes() == before
    finally:
        holder.kill()
        holder.wait()
    # the killed holder left its lock file behind; the kernel released the lock, so it is taken over
    assert ProfileStore(out).lock_path.exists()
    summary = profile(_config(space_file, samples=2), out, resume=True)
    assert summary.measured == 1 and summary.skipped == 1
    assert out.read_bytes().startswith(before)
    assert not ProfileStore(out).lock_path.exists()


@pytest.mark.slow
def test_two_real_profile_processes_on_one_file_write_each_record_once(space_file, tmp_path):
    """Two `hwnas profile --resume` processes on one --out: without a lock both would measure every task."""
    out = tmp_path / "both.jsonl"
    n = 6
    args = [sys.executable, "-m", "hwnas.cli.main", "profile", "--device", "cpu", "--space", space_file,
            "--samples", str(n), "--seq-len", "8", "--interleave", "2", "--quick", "--resume", "--out", str(out)]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = ProfileStore(out).lock_path
    deadline = time.time() + 60
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.02)
    second = subprocess.run(args, capture_output=True, check=False, text=True, timeout=300)
    first_err = first.communicate(timeout=300)[1]
    assert first.returncode == 0, first_err
    records = list(read_records(out))
    keys = [(r["layers"], r["hidden"], r["heads"], r["ffn"]) for r in records]
    assert len(keys) == len(set(keys)) == n
    if second.returncode == 2:  # it started while the first one wrote: one line naming the holder
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and f"PID {first.pid}" in lines[0]
    else:  # the first had finished already: the second resumed and found nothing left to measure
        assert second.returncode == 0, second.stderr


class _DriftingRunner:
    """Reports a fixed cost per call times a machine-wide slowdown that grows round by round (no real work).

    Each runner is timed once per round, so its k-th timed block is round k.
    """

    build_s = export_s = 0.0

    def __init__(self, ms):
        self.ms, self.blocks = ms, 0

    def run(self):
        pass

    def synchronize(self):
        pass

    def time_block(self, number):
        self.blocks += 1
        return number * self.ms * (1.0 + 0.2 * (self.blocks - 1)) / 1e3

    def after_block(self):
        return None


def test_the_per_round_ratio_to_the_anchor_cancels_drift_between_rounds():
    runners = [_DriftingRunner(2.0), _DriftingRunner(6.0), _DriftingRunner(4.0)]

    def warm(i):
        if i == len(runners) - 1:  # rounds start now: count blocks from here
            for r in runners:
                r.blocks = 0

    # the 6 ms runner reaches the 30 ms time cap after a few rounds; the anchor goes on with the 2 ms one
    cfg = TimingConfig(warmup_min_runs=1, warmup_min_s=0.0001, warmup_max_s=0.001, block_min_s=0.001, min_rounds=3,
                       max_rounds=12, target_rel_ci=1e-9, max_time_s=0.03, remeasure=False)
    a, b, ref = measure_interleaved(runners, cfg, anchor=2, on_warm=warm)
    assert ref.anchor_ratio is None and len(b.samples_ms) < len(a.samples_ms) == len(ref.samples_ms)
    assert a.anchor_ratio == pytest.approx(0.5) and b.anchor_ratio == pytest.approx(1.5)
    # the ratio of medians does not cancel it: the anchor's median covers later, slower rounds than b's
    assert b.median_ms / ref.median_ms < 1.4
