"""Ctrl-C, for real: a real `hwnas` process gets SIGINT once it has shown real progress (a record in the
profile, a checkpoint of the supernet), never after a guessed sleep.

Every command ends with the one line :func:`hwnas.cli.main.interrupted_line` writes,
``hwnas: interrupted: <what is kept>; rerun it with --resume to continue``, exit code
130, and what it says is kept is there and usable.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^hwnas: interrupted: (.+); rerun it with --resume to continue$")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]


def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen, Path]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    err = cwd / "stderr.txt"
    proc = subprocess.Popen([sys.executable, "-m", "hwnas.cli.main", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=err.open("w"))
    return proc, err


def _interrupt_when(proc: subprocess.Popen, err: Path, marker, timeout: float = 180.0) -> tuple[int, list[str]]:
    """Send SIGINT as soon as ``marker()`` holds; the exit code and the stderr lines."""
    deadline = time.monotonic() + timeout
    while not marker():
        if proc.poll() is not None:
            pytest.fail(f"hwnas ended (code {proc.returncode}) before any progress:\n{err.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no progress within {timeout:.0f} s:\n{err.read_text()[-2000:]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("hwnas did not stop within 120 s of SIGINT")
    return code, [line for line in err.read_text().splitlines() if line.strip()]


def _complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_profile_interrupted_keeps_every_chunk_and_resumes(tmp_path):
    archs = tmp_path / "archs.txt"
    archs.write_text("".join(f"layers={layers},hidden={hidden},heads=2,ffn={ffn}\n"
                             for layers in (1, 2) for hidden in (64, 128) for ffn in (128, 256)))
    out = tmp_path / "p.jsonl"
    args = ["profile", "--archs", archs, "--quick", "--interleave", "1", "--seq-len", "16", "--out", out]
    proc, err = _start(args, tmp_path)
    code, lines = _interrupt_when(proc, err, lambda: _complete_lines(out) >= 1)
    assert code == 130, lines[-5:]
    match = LINE.match(lines[-1])
    assert match and f"every completed chunk is saved in {out}" == match.group(1), lines[-3:]
    assert not any("Traceback" in line or "internal error" in line for line in lines)
    kept = [json.loads(line) for line in out.read_text().splitlines()]  # every line a complete record
    assert 1 <= len(kept) < 8
    from hwnas.cli.main import main  # the resume runs in this process: one interpreter start less

    with pytest.raises(SystemExit) as exc:
        main([*map(str, args), "--resume", "--quiet"])
    assert exc.value.code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    keys = {(r["layers"], r["hidden"], r["ffn"]) for r in records}
    assert len(records) == len(keys) == 8 and records[: len(kept)] == kept  # nothing lost, nothing repeated


def test_supernet_train_interrupted_keeps_a_verified_checkpoint(tmp_path):
    from hwnas.space import SearchSpace
    from hwnas.training.checkpoint import latest_checkpoint, verify_checkpoint
    from tests.supernet.conftest import TEXTS, make_teacher

    teacher = make_teacher(tmp_path / "teacher")
    space = tmp_path / "space.json"
    SearchSpace(name="t", layers=(1, 2), hidden=(32, 48), heads=(2, 4), ffn=(64, 96)).save(space)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "sn"
    proc, err = _start(["supernet", "train", "--teacher", teacher, "--space", space, "--data", corpus,
                        "--steps", "100000", "--checkpoint-every", "1", "--batch-size", "4", "--max-len", "16",
                        "--heldout", "8", "--threads", "1", "--out", out], tmp_path)
    code, lines = _interrupt_when(proc, err, lambda: (out / "checkpoints" / "latest.json").is_file())
    assert code == 130, lines[-5:]
    match = LINE.match(lines[-1])
    assert match, lines[-3:]
    step = int(re.fullmatch(rf"{re.escape(str(out))} keeps its checkpoint of step (\d+)", match.group(1)).group(1))
    assert not any("Traceback" in line or "internal error" in line for line in lines)
    ckpt = latest_checkpoint(out / "checkpoints")
    verify_checkpoint(ckpt)  # every file matches its checksum
    assert json.loads((ckpt / "state.json").read_text())["step"] >= step >= 1
    assert not (out.parent / "sn.lock").exists()  # the writer lock went with the process
