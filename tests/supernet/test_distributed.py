"""Data parallel with two CPU processes on gloo, started by torchrun: same result as one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file



@pytest.mark.slow
@pytest.mark.parametrize("mixture,port", [("none", "29561"), ("neuron", "29563")])
def test_torchrun_two_processes_match_one_process(tmp_path, tiny_teacher, tiny_space, mixture, port):
    torchrun = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun is not installed next to this Python")
    # Long texts: every row is full, so the mean over two half-batches equals the mean over the batch.
    corpus = tmp_path / "long.txt"
    corpus.write_text("\n".join(" ".join(["the movie is very good and the acting is great"] * 20) for _ in range(10)) + "\n")
    space_file = tmp_path / "t.json"
    tiny_space.save(space_file)
    common = ["--teacher", str(tiny_teacher), "--space", str(space_file), "--data", str(corpus), "--steps", "4",
              "--batch-size", "4", "--max-len", "16", "--heldout", "4", "--threads", "1"]
    if mixture != "none":
        common += ["--mixture", mixture, "--experts", "2", "--router-hidden", "8"]
    # Both runs on the CPU, also on a GPU machine: two processes cannot share one GPU under NCCL, and the
    # comparison is between one process and two, not between devices.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", port, "-m", "hwnas.cli.main",
                           "supernet", "train", *common, "--out", str(tmp_path / "ddp")],
                          env=env, capture_output=True, check=False, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "ddp" / "supernet.json").read_text())
    assert meta["world_size"] == 2 and meta["steps_done"] == 4

    one = subprocess.run([sys.executable, "-m", "hwnas.cli.main", "supernet", "train", *common, "--out", str(tmp_path / "one")],
                         env=env, capture_output=True, check=False, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    a = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "model.safetensors"))
    worst = max(float((a[k] - b[k]).abs().max()) for k in a if not k.startswith("router."))
    assert worst < 1e-5, worst
    # The router's gradient is proportional to the experts' differences (about 1e-3 of the weights at the start),
    # so summation-order roundoff is a large part of it, and AdamW turns it into steps of up to lr (2e-4) each:
    # half of one step is the tolerance there (2.3e-5 measured).
    router = max((float((a[k] - b[k]).abs().max()) for k in a if k.startswith("router.")), default=0.0)
    assert router < 1e-4, router
    log = [json.loads(x) for x in (tmp_path / "ddp" / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [0, 1, 2, 3]
