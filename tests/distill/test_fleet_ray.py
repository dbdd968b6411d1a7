"""Distilling a search front's best students on a real local Ray cluster: a head and two worker
nodes (real raylet processes on this machine, one CPU each, standing in for two machines).

The students are tiny (one layer, 32 or 64 wide, a few steps) and the teacher is the 2-layer
tiny teacher of the distillation tests, so the cluster's start dominates the time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from hwnas.data import embedded_path
from hwnas.errors import ClusterError, InvalidConfig
from hwnas.space import Architecture
from tests._ray import local_cluster

pytestmark = pytest.mark.slow

STUDENTS = [Architecture(1, 32, 2, 64), Architecture(1, 64, 2, 64), Architecture(1, 32, 4, 128)]
TRAIN = ["--task", str(embedded_path("sst2/train.tsv")), "--limit", "48", "--steps", "3", "--teacher-steps", "2",
         "--batch-size", "8", "--max-len", "16"]


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as c:
        yield c


def _search_dir(tmp_path: Path, archs=STUDENTS) -> Path:
    """A search folder as `hwnas search` writes it: front.json and winner.json (scores made up, best first)."""
    folder = tmp_path / "search"
    folder.mkdir()
    front = [{"arch": a.as_dict(), "score": 0.9 - 0.1 * i, "latency_ms": 1.0 + i, "latency_upper_ms": 1.2 + i,
              "params": 1000 * (i + 1), "feasible": True} for i, a in enumerate(archs)]
    (folder / "front.json").write_text(json.dumps({"space": "tiny", "budget_ms": 5.0, "front": front[::-1]}))
    (folder / "winner.json").write_text(json.dumps({**front[0], "budget_ms": 5.0, "space": "tiny", "device": "cpu",
                                                    "seq_len": 16, "batch_size": 1}))
    return folder


def _complete(folder: Path) -> bool:
    report = folder / "report.json"
    return report.is_file() and (folder / "model.onnx").is_file() and (folder / "config.json").is_file()


def test_students_distil_in_parallel_and_a_killed_driver_rerun_skips_the_finished(cluster, tiny_teacher, tmp_path):
    from hwnas.distill.fleet import distill_front

    search = _search_dir(tmp_path)
    out = tmp_path / "students"
    base = _base(tiny_teacher)
    # 1. the top two, one task each, at the same time
    events = []
    summary = distill_front(search, 2, base, out, cluster="ray", fleet=_fleet(cluster), on_progress=events.append)
    names = [s.name for s in summary.students]
    assert names == [STUDENTS[0].short, STUDENTS[1].short]  # best score first, top 2 only
    for name in names:
        assert _complete(out / name), sorted(p.name for p in (out / name).iterdir())
        report = json.loads((out / name / "report.json").read_text())
        assert report["arch_key"] == Architecture.parse(name).key
        assert report["search"]["front_rank"] == names.index(name) + 1 and report["search"]["budget_ms"] == 5.0
        assert report["teacher"]["reused"]  # fine-tuned once, by its own task, before the students
    assert not (out / STUDENTS[2].short).exists()
    assert [p.name for p in (out / "teachers").iterdir()] == [Path(summary.teacher["path"]).name]
    # two single-CPU nodes, two single-CPU tasks: one student on each
    assert {v.split()[0] for v in summary.nodes.values()} == {n.node_id[:8] for n in cluster.worker_nodes}
    assert [s["status"] for s in json.loads((out / "fleet.json").read_text())["students"]] == ["done", "done"]
    assert events[-1].completed == events[-1].total == 2
    before = {n: (out / n / "report.json").read_bytes() for n in names}

    # 2. the top three from the command line, its driver killed once the third student has started
    third = out / STUDENTS[2].short
    cmd = [sys.executable, "-m", "hwnas.cli.main", "distill", "front", str(search), "--top-k", "3", "--out", str(out),
           "--teacher", str(tiny_teacher), "--losses", "logits=1,hidden=1", *TRAIN, "--ray-address", cluster.address]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and driver.poll() is None and not (third / "distill_config.json").exists():
            time.sleep(0.05)
        assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert not (third / "report.json").exists()

    # 3. rerun: the finished two are skipped untouched, the third completes
    summary = distill_front(search, 3, base, out, cluster="ray", fleet=_fleet(cluster))
    assert sorted(summary.skipped) == sorted(names)
    assert all(_complete(out / a.short) for a in STUDENTS)
    assert {n: (out / n / "report.json").read_bytes() for n in names} == before
    assert len(list((out / "teachers").iterdir())) == 1  # the teacher was not trained again
    assert [s["status"] for s in json.loads((out / "fleet.json").read_text())["students"]] == ["skipped", "skipped", "done"]


def test_other_settings_in_a_finished_folder_are_refused_before_training(cluster, tiny_teacher, tmp_path):
    from hwnas.distill.api import DistillConfig
    from hwnas.distill.fleet import distill_front

    search = _search_dir(tmp_path, STUDENTS[:1])
    out = tmp_path / "students"
    base = DistillConfig(arch=STUDENTS[0], task=str(embedded_path("sst2/train.tsv")), teacher=str(tiny_teacher),
                         limit=48, steps=3, teacher_steps=2, batch_size=8, max_len=16, measure=False, losses=_losses())
    distill_front(search, 1, base, out, cluster="local")  # no Ray: one after another in this process
    before = (out / STUDENTS[0].short / "report.json").read_bytes()
    from dataclasses import replace

    with pytest.raises(InvalidConfig, match=r"holds a distillation with other settings \(changed: steps\)"):
        distill_front(search, 1, replace(base, steps=4), out, cluster="ray", fleet=_fleet(cluster))
    assert (out / STUDENTS[0].short / "report.json").read_bytes() == before


def test_no_node_with_a_gpu_is_one_line(cluster, tiny_teacher, tmp_path):
    from hwnas.distill.api import DistillConfig
    from hwnas.distill.fleet import distill_front

    search = _search_dir(tmp_path, STUDENTS[:1])
    base = DistillConfig(arch=STUDENTS[0], task=str(embedded_path("sst2/train.tsv")), teacher=str(tiny_teacher),
                         measure=False)
    with pytest.raises(ClusterError, match=r"no live node of the Ray cluster offers CPU=1, GPU=1 .*--train-device cpu"):
        distill_front(search, 1, base, tmp_path / "s", cluster="ray", fleet=_fleet(cluster), train_device="cuda")
    assert not (tmp_path / "s" / STUDENTS[0].short).exists()


def _base(tiny_teacher, **kw):
    from hwnas.distill.api import DistillConfig

    return DistillConfig(**{**dict(arch=STUDENTS[0], task=str(embedded_path("sst2/train.tsv")), teacher=str(tiny_teacher),
                                   limit=48, steps=3, teacher_steps=2, batch_size=8, max_len=16, measure=False,
                                   losses=_losses()), **kw})


def _fleet(cluster):
    from hwnas.profiling.fleet import FleetConfig

    return FleetConfig(address=cluster.address)


def _losses():
    from hwnas.distill.losses import LossConfig

    return LossConfig(weights={"logits": 1.0, "hidden": 1.0})


def test_cuda_students_take_a_ray_gpu_declared_gpu_stands_in_mocked_cuda(cluster, tiny_teacher, tmp_path):
    """No GPU here: a node *declares* one (Ray schedules on declared resources and sets CUDA_VISIBLE_DEVICES
    for the task it gives it); torch then finds no CUDA device and trains on the CPU. What is real: the task
    asked Ray for a GPU, went to the only node offering one, and was handed GPU 0."""
    from hwnas.distill.api import DistillConfig
    from hwnas.distill.fleet import distill_front

    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=80 * 2**20)
    try:
        search = _search_dir(tmp_path, STUDENTS[:1])
        base = DistillConfig(arch=STUDENTS[0], task=str(embedded_path("sst2/train.tsv")), teacher=str(tiny_teacher),
                             limit=48, steps=3, teacher_steps=2, batch_size=8, max_len=16, measure=False,
                             losses=_losses())
        summary = distill_front(search, 1, base, tmp_path / "s", cluster="ray", fleet=_fleet(cluster),
                                train_device="cuda")
        name = STUDENTS[0].short
        assert _complete(tmp_path / "s" / name)
        assert summary.nodes[name].split()[0] == gpu_node.node_id[:8] and summary.gpu_ids[name] == "0"
    finally:
        cluster.remove_node(gpu_node)
