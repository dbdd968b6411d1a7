"""A training run killed with SIGKILL resumes from its last checkpoint and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from hwnas.supernet.train import TrainConfig, train_supernet

STEPS = 60


def _argv(teacher, space_file, corpus, out, cache):
    return [sys.executable, "-m", "hwnas.cli.main", "supernet", "train", "--teacher", str(teacher), "--space", str(space_file),
            "--data", str(corpus), "--steps", str(STEPS), "--batch-size", "4", "--max-len", "16", "--heldout", "8",
            "--checkpoint-every", "5", "--threads", "1", "--out", str(out)]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_teacher, tiny_space, corpus):
    space_file = tmp_path / "t.json"
    tiny_space.save(space_file)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_argv(tiny_teacher, space_file, corpus, out, None), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if pointer.is_file() and json.loads(pointer.read_text())["step"] >= 10:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "training finished (or failed) before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    killed_at = json.loads(pointer.read_text())["step"]
    assert 10 <= killed_at < STEPS

    cfg = dict(space=tiny_space, teacher=str(tiny_teacher), data=str(corpus), steps=STEPS, batch_size=4, seq_len=16,
               heldout=8, checkpoint_every=5, threads=1, cache_dir=str(out / ".cache"))
    resumed = train_supernet(TrainConfig(out=str(out), **cfg), resume=True)
    assert resumed.resumed_from is not None and resumed.resumed_from >= killed_at and resumed.steps_done == STEPS
    log = [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log == list(range(STEPS))  # no step lost, none repeated

    reference = tmp_path / "reference"
    train_supernet(TrainConfig(out=str(reference), **cfg))
    a = load_file(str(out / "model.safetensors"))
    b = load_file(str(reference / "model.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst <= 1e-5, worst
