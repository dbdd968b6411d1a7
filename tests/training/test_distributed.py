"""Distillation on two CPU processes under torchrun (accelerate, gloo) gives the one-process result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_torchrun_distillation_matches_one_process(tmp_path):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun is not installed next to this Python")
    # Both runs on the CPU, also on a GPU machine: two processes cannot share one GPU under NCCL, and the
    # comparison is between one process and two, not between devices.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", "29567", "-m", "tests.training.ddp_distill",
                           str(tmp_path / "ddp")], cwd=ROOT, env=env, capture_output=True, check=False, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = subprocess.run([sys.executable, "-m", "tests.training.ddp_distill", str(tmp_path / "one")], cwd=ROOT, env=env,
                         capture_output=True, check=False, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]

    events = json.loads((tmp_path / "one" / "events.json").read_text())
    assert [(e["step"], e["checkpoint"]) for e in events] == [(1, False), (2, True), (3, False), (4, True)]
    assert json.loads((tmp_path / "ddp" / "events.json").read_text()) == events  # the main process reports, once
    a = load_file(str(tmp_path / "ddp" / "student.safetensors"))
    b = load_file(str(tmp_path / "one" / "student.safetensors"))
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-5, worst
    # the main process wrote the checkpoint of the last step, in the one checkpoint format
    for run_dir, world in (("ddp", 2), ("one", 1)):
        pointer = json.loads((tmp_path / run_dir / "checkpoints" / "latest.json").read_text())
        state = json.loads((tmp_path / run_dir / "checkpoints" / pointer["checkpoint"] / "state.json").read_text())
        assert pointer["step"] == 4 and state["world_size"] == world
