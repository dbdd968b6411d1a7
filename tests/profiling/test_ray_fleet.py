"""Profiling on a real local Ray cluster: a head and two measuring nodes, each a real raylet
process on this machine offering one unit of ``hwnas-device-cpu`` (standing in for two machines).

One cluster serves the whole module (starting it takes 10-30 s on a busy 2-core machine).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from hwnas.devices.timing import TimingConfig  # noqa: E402
from hwnas.errors import ClusterError, ProfileStoreError  # noqa: E402
from hwnas.profiling import plan_tasks, read_records  # noqa: E402
from hwnas.profiling.fleet import (  # noqa: E402
    FINGERPRINT_TEST_HOOK,
    FleetConfig,
    flag_slow_nodes,
    profile_on_cluster,
    reference_architecture,
)
from tests._ray import local_cluster  # noqa: E402
from tests.profiling.mini import mini_config  # noqa: E402

pytestmark = pytest.mark.slow

RESOURCE = "hwnas-device-cpu"


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(resources={RESOURCE: 1}, connect=True) as c:
        yield c


def _config(space_file, **kw):
    return mini_config(space_file, **{"samples": 8, **kw})


def _keys(records):
    return [(r["layers"], r["hidden"], r["heads"], r["ffn"], r["batch_size"], r["seq_len"]) for r in records]


def _planned(config):
    _, tasks = plan_tasks(config)
    return sorted((t.arch.layers, t.arch.hidden, t.arch.heads, t.arch.ffn, t.shape.batch_size, t.shape.seq_len)
                  for t in tasks)


def _raylet_pids(c) -> set[int]:
    pids = set()
    for node in [c.head_node, *c.worker_nodes]:
        for info in node.all_processes.get("raylet", []):
            pids.add(info.process.pid)
    return pids


def _chunk_workers(c) -> list[int]:
    """PIDs of this cluster's worker processes busy measuring a chunk (Ray titles them ray::<function>)."""
    raylets = _raylet_pids(c)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if cmdline.startswith(b"ray::_measure_chunk") and ppid in raylets:
            found.append(int(entry.name))
    return found


def test_every_record_arrives_once_with_its_node(cluster, space_file, tmp_path):
    out = tmp_path / "fleet.jsonl"
    config = _config(space_file)
    progress = []
    summary = profile_on_cluster(config, out, FleetConfig(), on_progress=progress.append)
    records = list(read_records(out))
    assert sorted(_keys(records)) == _planned(config)  # all of them, none twice
    assert summary.measured == len(records) and summary.failed_chunks == 0
    node_ids = {n["NodeID"] for n in ray.nodes() if n["Resources"].get(RESOURCE)}
    assert {r["node_id"] for r in records} <= node_ids
    assert len({r["node_id"] for r in records}) == 2  # both measuring nodes took chunks
    for r in records:
        assert r["reference_ms"] > 0 and r["fingerprint"]["cpu_model"] and r["worker_pid"] > 0
        assert r["reference_arch"] == reference_architecture(plan_tasks(config)[0], []).key
        assert "node_slow" in r and "node_ratio" in r
    assert sum(n.records for n in summary.nodes) == summary.measured
    assert {n.node_id for n in summary.nodes} == {r["node_id"] for r in records}
    assert progress and progress[-1].done == len(records)
    again = profile_on_cluster(config, out, FleetConfig(), resume=True)
    assert again.measured == 0 and again.skipped == len(records)
    assert len(list(read_records(out))) == len(records)


def test_worker_killed_mid_chunk_is_retried_without_loss_or_duplicate(cluster, space_file, tmp_path):
    out = tmp_path / "fleet.jsonl"
    config = _config(space_file)
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            for pid in _chunk_workers(cluster):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        summary = profile_on_cluster(config, out, FleetConfig(max_retries=2))
    finally:
        stop.set()
        thread.join()
    records = list(read_records(out))
    assert killed, "no measuring worker was found to kill"
    assert sorted(_keys(records)) == _planned(config)
    assert killed[0] not in {r["worker_pid"] for r in records}  # the killed chunk came back from another process
    assert summary.failed_chunks == 0 and summary.duplicates_dropped == 0


def test_driver_killed_then_resumed_loses_and_repeats_nothing(cluster, space_file, tmp_path):
    out = tmp_path / "fleet.jsonl"
    config = _config(space_file)
    cmd = [sys.executable, "-m", "hwnas.cli.main", "profile", "--cluster", "ray", "--ray-address", cluster.address,
           "--space", space_file, "--samples", "8", "--seq-len", "8", "--interleave", "2", "--quick", "--out", str(out)]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 300  # generous: a loaded 2-core machine starts Ray workers slowly
        while time.monotonic() < deadline and driver.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.05)
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        assert out.exists(), "the driver wrote no record within 300 s"
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            driver.kill()
    before = out.read_bytes()
    first = list(read_records(out))
    assert 1 <= len(first) < 8
    summary = profile_on_cluster(config, out, FleetConfig(), resume=True)
    records = list(read_records(out))
    assert out.read_bytes().startswith(before)  # nothing written before the kill was touched
    assert sorted(_keys(records)) == _planned(config)
    assert summary.skipped == len(first) and summary.measured == 8 - len(first)


def test_resume_with_other_settings_is_refused(cluster, space_file, tmp_path):
    out = tmp_path / "fleet.jsonl"
    profile_on_cluster(_config(space_file, samples=2), out, FleetConfig())
    before = out.read_bytes()
    with pytest.raises(ProfileStoreError, match="threads=1 .asked 2."):
        profile_on_cluster(_config(space_file, samples=4, threads=2), out, FleetConfig(), resume=True)
    with pytest.raises(ProfileStoreError, match="already exists; pass --resume"):
        profile_on_cluster(_config(space_file, samples=4), out, FleetConfig())
    assert out.read_bytes() == before


def test_no_node_offers_the_resource(cluster, space_file, tmp_path):
    out = tmp_path / "fleet.jsonl"
    with pytest.raises(ClusterError, match="no live node of the Ray cluster offers the resource 'hwnas-device-gpu9'"):
        profile_on_cluster(_config(space_file), out, FleetConfig(resource="hwnas-device-gpu9"))
    assert not out.exists()


def test_cli_fleet_profile_prints_a_line_per_node(cluster, space_file, tmp_path):
    from click.testing import CliRunner

    from hwnas.cli.main import cli

    out = tmp_path / "cli.jsonl"
    result = CliRunner().invoke(cli, ["profile", "--cluster", "ray", "--space", space_file, "--samples", "4",
                                      "--seq-len", "8", "--interleave", "2", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.count("node ") >= 2 and "hwnas-device-cpu" in result.output
    assert len(list(read_records(out))) == 4


def test_mixed_fingerprints_are_refused_naming_the_node(cluster, space_file, tmp_path):
    # The test hook makes this third node report another CPU model, standing in for a machine of another kind.
    odd = cluster.add_node(num_cpus=1, resources={RESOURCE: 1},
                           env_vars={FINGERPRINT_TEST_HOOK: json.dumps({"cpu_model": "Other CPU 9000"})},
                           **cluster.local)
    try:
        odd_id = odd.node_id
        out = tmp_path / "fleet.jsonl"
        with pytest.raises(ClusterError, match=rf"not all the same kind of machine.*{odd_id[:8]}.*Other CPU 9000"):
            profile_on_cluster(_config(space_file), out, FleetConfig())
        assert not out.exists() or out.read_bytes() == b""
        # Without the up-front probe, the first chunk of another kind stops the run; only one kind is written.
        # (Four chunks in flight over three single-slot nodes: every node takes one.)
        out = tmp_path / "noprobe.jsonl"
        with pytest.raises(ClusterError, match="is another kind of machine"):
            profile_on_cluster(_config(space_file), out, FleetConfig(probe=False))
        if out.exists():
            assert len({r["fingerprint"]["cpu_model"] for r in read_records(out)}) <= 1
    finally:
        cluster.remove_node(odd)


def test_reference_architecture_is_the_middle_of_the_space():
    from hwnas.space import Architecture, get_space

    space = get_space("small")
    ref = reference_architecture(space, [])
    assert ref == Architecture(4, 288, 4, 1024) and ref in space


def test_flag_slow_nodes_compares_each_node_with_the_others():
    ratios = flag_slow_nodes({"a": [1.0, 1.1, 1.0], "b": [1.0, 0.9], "c": [1.6, 1.5, 1.7], "d": []}, 1.2)
    assert ratios["c"] == pytest.approx(1.6 / 0.975)  # median of a (1.0) and b (0.95)
    assert ratios["a"] == pytest.approx(1.0 / 1.275)
    assert ratios["d"] is None
    assert flag_slow_nodes({"only": [2.0]}, 1.2) == {"only": None}


def test_measure_on_cluster_returns_one_record_per_task_in_order(cluster):
    from hwnas.devices.base import Shape
    from hwnas.profiling import Task
    from hwnas.profiling.fleet import measure_on_cluster
    from hwnas.space import Architecture

    archs = [Architecture(1, 32, 2, 64), Architecture(2, 64, 4, 128), Architecture(1, 64, 2, 64)]
    tasks = [Task(a, Shape(1, 8)) for a in archs]
    records = measure_on_cluster(tasks, device="cpu", timing=TimingConfig.quick(), interleave=2)
    assert [(r["layers"], r["hidden"], r["heads"], r["ffn"]) for r in records] == [a.as_tuple() for a in archs]
    assert all(r["latency_ms"] > 0 and r["reference_ms"] > 0 and r["node_id"] for r in records)


def test_time_budget_stops_submitting_and_keeps_what_returned(cluster, space_file, tmp_path):
    out = tmp_path / "fleet.jsonl"
    config = _config(space_file, time_budget_s=0.001, interleave=4)  # 2 chunks: the first always runs
    summary = profile_on_cluster(config, out, FleetConfig())
    assert summary.stopped == "time budget"
    assert summary.measured == len(list(read_records(out))) == 4 and summary.remaining == 4
    again = profile_on_cluster(_config(space_file, interleave=4), out, FleetConfig(), resume=True)
    assert again.measured == 4 and sorted(_keys(read_records(out))) == _planned(config)


def test_reference_without_a_space_uses_the_middle_of_the_planned_values():
    from hwnas.devices.base import Shape
    from hwnas.profiling import Task
    from hwnas.space import Architecture

    tasks = [Task(a, Shape(1, 8)) for a in (Architecture(1, 32, 2, 64), Architecture(3, 64, 4, 256),
                                             Architecture(2, 48, 4, 128))]
    # layers 1,2,3 -> 2; hidden 32,48,64 -> 48; heads dividing 48: 2,4 -> 2 (lower middle); ffn 64,128,256 -> 128
    assert reference_architecture(None, tasks) == Architecture(2, 48, 2, 128)


def _tiny_predictor(tmp_path):
    from hwnas.predictors.bundle import save_bundle
    from hwnas.space import Architecture
    from hwnas.predictors.training import fit_predictor, load_measurements

    profile = Path(__file__).resolve().parents[1] / "predictors" / "data" / "cpu-tiny.jsonl"
    fitted = fit_predictor(load_measurements(profile), tune_hyperparameters=False,
                           params={"n_estimators": 5, "max_depth": 2}, n_folds=3)
    # The committed profile predates drift references; give the bundle one, as a profile made today records.
    fitted.manifest["reference"] = {"arch": Architecture(1, 64, 2, 128).key, "batch_size": 1, "seq_len": 8,
                                    "latency_ms": 2.0}
    return save_bundle(fitted, tmp_path / "cpu-tiny.hwnas")


def test_verify_on_the_fleet_uses_the_predictors_reference_on_each_node(cluster, tmp_path):
    from hwnas.predictors import load_predictor
    from hwnas.search.verify import predictor_reference, verify
    from hwnas.space import Architecture

    predictor = load_predictor(_tiny_predictor(tmp_path))
    ref_task, ref_then = predictor_reference(predictor)
    archs = [Architecture(1, 128, 2, 256), Architecture(2, 128, 4, 256), Architecture(1, 128, 2, 256),
             Architecture(2, 128, 2, 512)]
    records = verify(archs, device="cpu", predictor=predictor, budget_ms=1000.0, seq_len=8,
                     roles=["winner", "front", "front", "front"], timing=TimingConfig.quick(), interleave=1,
                     fleet=FleetConfig())
    assert [r.arch for r in records] == [archs[0], archs[1], archs[3]]  # the duplicate measured once, order kept
    assert records[0].role == "winner,front"
    node_ids = {n["NodeID"] for n in ray.nodes() if n["Resources"].get(RESOURCE)}
    assert {r.node_id for r in records} <= node_ids and len({r.node_id for r in records}) == 2  # chunks spread
    for r in records:
        assert r.measured_ms > 0 and r.within_budget and r.to_dict()["node_id"] == r.node_id
        # the drift is the predictor's reference, timed beside r in r's rounds on r's node
        assert r.drift.reference_arch == ref_task.arch.key and r.drift.then_ms == ref_then == 2.0
        assert r.drift.now_ms > 0 and r.normalised_ms == pytest.approx(r.reference_ratio * ref_then)


def test_cli_search_verify_cluster_ray_writes_the_nodes_to_verify_json(cluster, tmp_path):
    from click.testing import CliRunner

    from hwnas.cli.main import cli

    out = tmp_path / "search"
    result = CliRunner().invoke(cli, ["search", "--predictor", str(_tiny_predictor(tmp_path)), "--estimator", "params",
                                      "--max-latency", "50ms", "--evaluations", "4", "--strategy", "random", "--seq-len", "8",
                                      "--verify", "cpu", "--quick", "--cluster", "ray", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "verify.json").read_text())
    assert data["cluster"] == "ray" and data["nodes"]
    assert {a["node_id"] for a in data["architectures"]} == set(data["nodes"])
    assert data["summary"]["n"] == len(data["architectures"]) >= 1


# Last of the cluster tests: a killed node stays listed as alive for a while, which slows what follows.
def test_node_removed_mid_chunk_its_chunk_is_retried_on_another_node(cluster, space_file, tmp_path):
    out = tmp_path / "fleet.jsonl"
    config = _config(space_file)
    removed: list[str] = []
    raylet_pids: list[int] = []
    stop = threading.Event()

    def remove_busy_node() -> None:
        # Kill (not drain) the raylet of the first node seen measuring a chunk, with its workers.
        while not stop.is_set() and not removed:
            for pid in _chunk_workers(cluster):
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                for node in list(cluster.worker_nodes):
                    if any(p.process.pid == ppid for p in node.all_processes.get("raylet", [])):
                        removed.append(node.node_id)
                        raylet_pids.append(ppid)
                        cluster.remove_node(node, allow_graceful=False)
                        break
                break
            time.sleep(0.01)

    thread = threading.Thread(target=remove_busy_node, daemon=True)
    thread.start()
    try:
        summary = profile_on_cluster(config, out, FleetConfig(max_retries=3))
    finally:
        stop.set()
        thread.join()
        # Give the next tests their two measuring nodes back.
        while len(cluster.worker_nodes) < 2:
            cluster.add_node(num_cpus=1, resources={RESOURCE: 1}, **cluster.local)
    records = list(read_records(out))
    assert removed, "no measuring node was found busy"
    assert sorted(_keys(records)) == _planned(config)  # nothing lost, nothing twice
    assert summary.failed_chunks == 0
    assert not Path(f"/proc/{raylet_pids[0]}").exists()  # the node's raylet (and its workers) really died
    assert {r["node_id"] for r in records} - set(removed)  # so the lost chunk came back from another node
