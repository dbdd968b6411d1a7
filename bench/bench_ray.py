"""Profiling on a Ray cluster: throughput, Ray's overhead per chunk, agreement between workers.

Starts a real local Ray cluster (a head with no device, then one and two measuring
nodes, each offering one unit of ``hwnas-device-cpu`` and one CPU) and compares, in
one process and one sitting:

1. throughput (records per second of wall time) of today's single process
   (``hwnas profile``, local) against the cluster with 1 and with 2 single-core workers;
2. Ray's cost per chunk: the round trip of an empty task holding the device resource,
   the idle slot time per chunk in the real runs, and the driver's append time per chunk;
3. test-retest agreement of the same architectures measured by two different workers,
   once one after the other and once both at the same time (sharing the machine's
   cores, caches and memory bandwidth), raw and divided by each chunk's reference.

    python bench/bench_ray.py                      # tiny space, 16 architectures, seq 128, 2 repetitions
    python bench/bench_ray.py --samples 48 --max-time 1s

The machine is shared: the load average is printed before and after; compare the
figures of one run with each other, not with another day's.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np


def _banner(argv: list[str]) -> None:
    print("$ python " + " ".join(shlex.quote(a) for a in argv), flush=True)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} logical cores"


def _key(r: dict) -> tuple:
    return (r["layers"], r["hidden"], r["heads"], r["ffn"], r["batch_size"], r["seq_len"])


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    rel = np.abs(b - a) / a
    return (f"n={len(a)}  within ±5%: {np.mean(rel <= 0.05):.0%}  within ±10%: {np.mean(rel <= 0.10):.0%}  "
            f"MAPE: {np.mean(rel):.1%}  worst: {rel.max():.1%}  mean B vs A: {np.mean((b - a) / a):+.1%}")


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"median {statistics.median(values) * 1e3:.1f} ms (p10 {np.percentile(values, 10) * 1e3:.1f}, "
            f"p90 {np.percentile(values, 90) * 1e3:.1f}, n={len(values)})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="tiny")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--max-time", default="0.5s", help="timed inference cap per architecture and pass")
    parser.add_argument("--repeats", type=int, default=2, help="local / 1 worker / 2 workers, this many times in turn")
    parser.add_argument("--noop-tasks", type=int, default=40, help="empty tasks timed for the round-trip figure")
    args = parser.parse_args(argv)
    _banner(["bench/bench_ray.py", *argv])

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    repo = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from hwnas.cli._common import parse_duration_s
    from hwnas.devices.timing import TimingConfig
    from hwnas.profiling import ProfileConfig, profile, read_records
    from hwnas.profiling.fleet import FleetConfig, _measure_chunk, profile_on_cluster, reference_architecture
    from hwnas.profiling.runner import plan_tasks

    timing = TimingConfig(max_time_s=parse_duration_s(args.max_time))
    config = ProfileConfig(device="cpu", space=args.space, samples=args.samples, seq_lens=(args.seq_len,),
                           threads=1, timing=timing)
    resource = "hwnas-device-cpu"
    solo = "hwnas-device-cpu-solo"  # offered by the first node only: the one-worker runs ask for it
    print(_load(), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    # Import torch and transformers and build once, so the local runs do not pay for it (Ray's probe does it for the fleet).
    profile(ProfileConfig(device="cpu", space=args.space, samples=1, seq_lens=(args.seq_len,), timing=TimingConfig.quick()),
            tmp / "warmup.jsonl")

    node_args = dict(num_cpus=1, object_store_memory=80 * 2**20)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=0, object_store_memory=80 * 2**20))
    try:
        nodes = [cluster.add_node(resources={resource: 1, solo: 1}, **node_args),
                 cluster.add_node(resources={resource: 1}, **node_args)]
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        rates: dict[str, list[float]] = {"local": [], "ray1": [], "ray2": []}
        for rep in range(args.repeats):
            print(f"\nrepetition {rep + 1} of {args.repeats} ({_load()})", flush=True)
            s = profile(config, tmp / f"local{rep}.jsonl")
            rates["local"].append(s.measured / s.wall_s)
            print(f"  local, one process, 1 thread: {s.measured} records in {s.wall_s:.1f} s = {rates['local'][-1]:.2f} records/s",
                  flush=True)
            for n_workers, res in ((1, solo), (2, resource)):
                out = tmp / f"ray{n_workers}-{rep}.jsonl"
                s = profile_on_cluster(config, out, FleetConfig(resource=res))
                rate = s.measured / s.wall_s
                rates[f"ray{n_workers}"].append(rate)
                idle = max(0.0, s.wall_s * s.slots - sum(n.busy_s for n in s.nodes))
                print(f"  ray, {n_workers} single-core worker(s): {s.measured} records in {s.wall_s:.1f} s = {rate:.2f} records/s "
                      f"= {rate / rates['local'][-1]:.2f}x local; {s.chunks} chunks of <= {s.chunk_size} (+1 reference each: "
                      f"{(s.measured + s.chunks) / s.wall_s:.2f} architectures/s measured in all); "
                      f"idle slot time per chunk {idle / s.chunks * 1e3:.0f} ms; driver append per chunk "
                      f"{s.append_s / s.chunks * 1e3:.1f} ms", flush=True)
                for ns in s.nodes:
                    ratio = "-" if ns.ratio is None else f"{ns.ratio:.3f}"
                    print(f"      node {ns.short_id}: {ns.records} records, {ns.chunks} chunks, busy {ns.busy_s:.1f} s, "
                          f"reference {ns.median_reference_ms:.3f} ms, ratio to the other node {ratio}")
        for key in ("ray1", "ray2"):
            ratios = [r / l for r, l in zip(rates[key], rates["local"], strict=True)]
            print(f"{key} / local throughput per repetition: {', '.join(f'{x:.2f}x' for x in ratios)}")
        print(_load(), flush=True)

        # 2. Ray's round trip for an empty task holding the device resource
        @ray.remote(num_cpus=0, resources={resource: 1})
        def noop() -> float:
            return time.perf_counter()

        ray.get(noop.remote())
        trips = []
        for _ in range(args.noop_tasks):
            t0 = time.perf_counter()
            ray.get(noop.remote())
            trips.append(time.perf_counter() - t0)
        print(f"\nempty task round trip (submit -> result, one at a time): {_spread(trips)}")

        # 3. the same chunk measured by two different workers
        space, tasks = plan_tasks(config)
        reference = reference_architecture(space, tasks)
        chunk = tasks[: min(12, len(tasks))]
        spec = {
            "device": "cpu", "threads": 1, "dtype": "fp32", "seed": 0, "timing": asdict(timing),
            "reference": [reference.as_dict(), 1, args.seq_len],
            "tasks": [[t.arch.as_dict(), t.shape.batch_size, t.shape.seq_len] for t in chunk],
            "chunk_seed": 7, "extra": {},
        }
        ids = [n.node_id for n in nodes[:2]]
        remote = ray.remote(_measure_chunk)

        def on(node_id):
            return remote.options(num_cpus=0, resources={resource: 1},
                                  scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))

        sequential = [ray.get(on(i).remote(spec)) for i in ids]
        concurrent = ray.get([on(i).remote(spec) for i in ids])
        print(f"\nsame {len(chunk)} architectures measured by worker A and worker B ({_load()}):")
        for label, (a, b) in (("one after the other", sequential), ("both at the same time", concurrent)):
            ka = {_key(r): r for r in a["records"]}
            kb = {_key(r): r for r in b["records"]}
            common = sorted(set(ka) & set(kb))
            la = np.array([ka[k]["latency_ms"] for k in common])
            lb = np.array([kb[k]["latency_ms"] for k in common])
            print(f"  {label:22s} raw:        {agreement(la, lb)}")
            na, nb = la / a["reference_ms"], lb / b["reference_ms"]
            print(f"  {label:22s} /reference: {agreement(na, nb)}")
        seq_a, con_a = sequential[0], concurrent[0]
        ka = {_key(r): r["latency_ms"] for r in seq_a["records"]}
        kc = {_key(r): r["latency_ms"] for r in con_a["records"]}
        common = sorted(set(ka) & set(kc))
        print(f"  worker A alone vs worker A beside B (what sharing the machine did): "
              f"{agreement(np.array([ka[k] for k in common]), np.array([kc[k] for k in common]))}")

        # 4. local process vs the two-worker fleet run, whole plan (different processes, minutes apart)
        loc = {_key(r): r["latency_ms"] for r in read_records(tmp / "local0.jsonl")}
        fl = {_key(r): r["latency_ms"] for r in read_records(tmp / "ray2-0.jsonl")}
        common = sorted(set(loc) & set(fl))
        print(f"\nlocal run vs 2-worker fleet run (minutes apart): "
              f"{agreement(np.array([loc[k] for k in common]), np.array([fl[k] for k in common]))}")
        print(_load())
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
