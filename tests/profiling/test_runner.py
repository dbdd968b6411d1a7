from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hwnas.errors import InvalidConfig, ProfileStoreError
from hwnas.profiling import plan_tasks, profile, read_records
from hwnas.space import SearchSpace
from tests.profiling.mini import MINI_SPACE, mini_config as _config


def test_plan_is_deterministic_and_crosses_shapes(space_file):
    c = _config(space_file, seq_lens=(8, 16), batch_sizes=(1, 2))
    _, a = plan_tasks(c)
    _, b = plan_tasks(c)
    assert a == b
    assert len(a) == 4 * 4
    assert {(t.shape.batch_size, t.shape.seq_len) for t in a} == {(1, 8), (1, 16), (2, 8), (2, 16)}


def test_profile_writes_complete_records(space_file, tmp_path):
    out = tmp_path / "p.jsonl"
    seen = []
    summary = profile(_config(space_file), out, on_record=seen.append)
    records = list(read_records(out))
    assert summary.measured == len(records) == len(seen) == 4
    r = records[0]
    for key in ("latency_ms", "p10_ms", "p90_ms", "iqr_ms", "samples_ms", "build_s", "export_s", "warmup_s",
                "timed_s", "fingerprint", "settings", "threads", "dtype", "space", "run_id", "params"):
        assert key in r, key
    assert r["fingerprint"]["cpu_model"] and r["fingerprint"]["torch"]
    # the statistics are those of the raw samples kept with the record (rounded to 1e-6 ms there)
    samples = np.asarray(r["samples_ms"])
    assert len(samples) == r["n_blocks"] >= 2
    for key, q in (("latency_ms", 50), ("p10_ms", 10), ("p90_ms", 90)):
        assert r[key] == pytest.approx(float(np.percentile(samples, q)), abs=1e-5), key
    assert r["iqr_ms"] == pytest.approx(float(np.percentile(samples, 75) - np.percentile(samples, 25)), abs=1e-5)
    assert summary.latency_ms_min <= summary.latency_ms_max
    assert summary.timed_s > 0 and summary.build_s > 0


def test_existing_file_is_never_overwritten_and_resume_skips(space_file, tmp_path):
    out = tmp_path / "p.jsonl"
    profile(_config(space_file, samples=2), out)
    before = out.read_bytes()
    with pytest.raises(ProfileStoreError, match="already exists; pass --resume"):
        profile(_config(space_file, samples=4), out)
    assert out.read_bytes() == before
    summary = profile(_config(space_file, samples=4), out, resume=True)
    assert summary.skipped == 2 and summary.measured == 2
    assert out.read_bytes().startswith(before)
    again = profile(_config(space_file, samples=4), out, resume=True)
    assert again.measured == 0 and again.skipped == 4


def test_resume_with_other_settings_is_refused(space_file, tmp_path):
    out = tmp_path / "p.jsonl"
    profile(_config(space_file, samples=1), out)
    with pytest.raises(ProfileStoreError, match="holds measurements with threads=1 .asked 2."):
        profile(_config(space_file, samples=2, threads=2), out, resume=True)


def test_time_budget_stops_between_chunks(space_file, tmp_path):
    out = tmp_path / "p.jsonl"
    summary = profile(_config(space_file, samples=8, interleave=1, time_budget_s=1e-9), out)
    assert summary.stopped == "time budget"
    assert summary.measured == 1  # the first chunk always runs; no new chunk starts after the budget
    assert summary.remaining == 7


def test_config_validation(space_file):
    with pytest.raises(InvalidConfig, match="samples must be an integer >= 1; got 0"):
        _config(space_file, samples=0)
    with pytest.raises(InvalidConfig, match="seq_len must be an integer >= 1"):
        _config(space_file, seq_lens=(0,))
    with pytest.raises(InvalidConfig, match="plan must be 'lhs' or 'random'"):
        _config(space_file, plan="grid")


def test_sigkill_then_resume_loses_and_repeats_nothing(space_file, tmp_path):
    """Kill a real `hwnas profile` process with SIGKILL part way, resume, and check the file."""
    out = tmp_path / "killed.jsonl"
    n = len(SearchSpace.from_dict(MINI_SPACE))
    args = [sys.executable, "-m", "hwnas.cli.main", "profile", "--device", "cpu", "--space", space_file,
            "--samples", str(n), "--seq-len", "8", "--interleave", "1", "--quick", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if out.exists() and out.read_text().count("\n") >= 2:
            break
        if proc.poll() is not None:
            pytest.fail("the profile run ended before it could be killed")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = [json.loads(line) for line in out.read_text().splitlines() if line.strip().endswith("}")]
    assert 2 <= len(partial) < n
    resumed = subprocess.run(args + ["--resume"], capture_output=True, check=False, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    records = list(read_records(out))
    keys = [(r["layers"], r["hidden"], r["heads"], r["ffn"]) for r in records]
    assert len(keys) == len(set(keys)) == n  # nothing repeated, nothing missing
    assert [r["run_id"] for r in records[: len(partial)]] == [r["run_id"] for r in partial]  # earlier records untouched


def test_chunks_respect_count_and_memory():
    from hwnas.profiling.runner import Task, chunk_tasks
    from hwnas.devices import Shape
    from hwnas.space import Architecture

    big = Architecture(12, 768, 12, 3072)  # ~110M parameters: ~840 MiB counted twice in fp32
    small = Architecture(1, 64, 2, 64)
    tasks = [Task(big, Shape(1, 8))] * 5 + [Task(small, Shape(1, 8))] * 5
    chunks = chunk_tasks(tasks, interleave=4, max_chunk_mb=2000)
    assert [len(c) for c in chunks] == [2, 2, 4, 2]
    assert sum(chunks, []) == tasks
    assert [len(c) for c in chunk_tasks(tasks, interleave=4, max_chunk_mb=2000, dtype="bf16")] == [4, 4, 2]
