"""hwnas distill records its own CPU time, attempt by attempt, so a killed and resumed run reports what it cost."""

from __future__ import annotations

import json

import pytest

from hwnas.data import embedded_path
from hwnas.distill.api import CPU_FILE, CpuLedger, DistillConfig, distill


def _burn(seconds: float) -> None:
    import time

    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_ledger_adds_attempts_across_processes_and_survives_damage(tmp_path):
    path = tmp_path / CPU_FILE
    first = CpuLedger(path)
    _burn(0.05)
    one = first.update()  # a killed attempt: its last checkpoint wrote this
    assert one >= 0.05
    second = CpuLedger(path)  # the resumed run reads the killed attempt back
    _burn(0.05)
    total = second.update(finished=True)
    data = json.loads(path.read_text())
    assert [a["finished"] for a in data["attempts"]] == [False, True]
    assert total == pytest.approx(sum(a["cpu_s"] for a in data["attempts"]))
    assert total >= one + 0.05

    path.write_text("{not json")  # a damaged ledger costs its figures, never the run
    assert CpuLedger(path).update() >= 0.0
    assert len(json.loads(path.read_text())["attempts"]) == 1


def test_killed_then_resumed_distillation_reports_both_attempts(tiny_teacher, tmp_path):
    out = tmp_path / "s"
    config = DistillConfig(
        arch="layers=1,hidden=32,heads=2,ffn=64", task=str(embedded_path("sst2/train.tsv")),
        eval=str(embedded_path("sst2/dev.tsv")), teacher=str(tiny_teacher), limit=64, eval_limit=32,
        steps=6, teacher_steps=4, batch_size=8, max_len=32, checkpoint_every=3, measure=False,
    )

    def kill_after_first_checkpoint(event):
        if event.stage == "distill" and event.checkpoint:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(config, out, on_progress=kill_after_first_checkpoint)
    killed = json.loads((out / CPU_FILE).read_text())["attempts"]
    assert len(killed) == 1 and not killed[0]["finished"] and killed[0]["cpu_s"] > 0
    assert not (out / "report.json").exists()

    report = distill(config, out)
    assert report["training"]["distill"]["resumed_from"] == 3
    assert report["cpu_attempts"] == 2
    attempts = json.loads((out / CPU_FILE).read_text())["attempts"]
    assert attempts[0] == killed[0] and attempts[1]["finished"]
    assert report["cpu_s"] == pytest.approx(killed[0]["cpu_s"] + attempts[1]["cpu_s"], abs=1e-6)
    # a finished folder is returned as it is: reading it back adds no attempt
    assert distill(config, out)["cpu_attempts"] == 2
    assert len(json.loads((out / CPU_FILE).read_text())["attempts"]) == 2
