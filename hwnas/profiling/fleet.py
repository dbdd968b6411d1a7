"""Profile on a fleet of machines with Ray: many measuring nodes, one writer.

The driver (the process running ``hwnas profile --cluster ray``) plans the
tasks exactly as a local run does, cuts them into interleaved chunks and
sends each chunk to a Ray task. A task measures its chunk on the node it
lands on and returns the records; only the driver appends them to the
profile store, chunk by chunk, as they arrive. So the store keeps the crash
safety and ``--resume`` of a local run: a killed driver loses the chunks in
flight (they are measured again on resume) and nothing else.

Exclusive devices
    Every measuring task asks for one unit of a custom Ray resource,
    ``hwnas-device-<device>`` by default (``FleetConfig.resource``). An operator
    declares one unit per node (``ray start --resources='{"hwnas-device-cpu": 1}'``),
    so at most one measurement runs on a node at a time and no two workers
    share the device or, for CPU profiling, the cores they pin.

Faults
    A worker process or node that dies mid-chunk makes Ray run the chunk again
    on a node that still offers the resource (``max_retries`` times at most).
    The driver writes a chunk's records only when its result arrives, and drops
    any record whose key is already in the store, so a retry never duplicates.
    A chunk whose retries are exhausted is reported and left for ``--resume``;
    the run goes on with the other chunks.

Slow nodes
    Each chunk also measures a reference architecture in its interleaved rounds
    and stores its latency as ``reference_ms`` with every record. A node whose
    median reference latency exceeds the median of the other nodes by more than
    ``slow_ratio`` is reported, and the records it delivers while it is that slow
    carry ``node_slow: true`` (with ``node_ratio``, the ratio at the time).

Heterogeneous fleets
    Every record carries its node's device fingerprint (and ``node_id``,
    ``node_ip``). Before measuring, one probe task per node collects the
    fingerprints; nodes that differ are refused with one line naming them,
    and so is a node that joins later with another fingerprint. One profile
    per hardware kind is made by declaring a resource per kind
    (``hwnas-device-cpu-epyc``, ``hwnas-device-cpu-xeon``) and running one
    profile per resource (``--resource``).

Ray is optional: ``pip install 'hwnas[ray]'``. Nothing here imports it at
module import time.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas.devices.base import Shape
from hwnas.devices.timing import TimingConfig
from hwnas.errors import ClusterError, HwnasError, InvalidConfig, ProfileStoreError, ProfilingError, check_int
from hwnas.profiling.runner import (ProfileConfig, ProfileSummary, Task, _fill_summary, check_resume, chunk_tasks,
                                   measure_tasks, open_profile, plan_tasks)
from hwnas.profiling.store import ProfileStore, record_key, stored_key
from hwnas.space import Architecture, SearchSpace

__all__ = [
    "FleetConfig", "FleetProgress", "FleetSummary", "NodeStats", "FINGERPRINT_TEST_HOOK", "check_cluster", "connect",
    "default_resource", "flag_slow_nodes", "measure_on_cluster", "profile_on_cluster", "reference_architecture",
    "verify_fleet",
]

#: Test hook, read by measuring workers only: a JSON object merged into the device
#: fingerprint a node reports. The Ray tests start one node with it set to stand in
#: for a machine of another kind; never set it on a real fleet.
FINGERPRINT_TEST_HOOK = "HWNAS_TEST_FINGERPRINT_OVERRIDE"

_RAY_HINT = "pip install 'hwnas[ray]'"


def default_resource(device: str) -> str:
    """The custom Ray resource a node declares to offer ``device`` exclusively."""
    return f"hwnas-device-{device}"


@dataclass(frozen=True)
class FleetConfig:
    """Where and how to profile on a Ray cluster.

    Args:
        address: the cluster to join (``HOST:PORT`` of the head, ``auto`` for a
            cluster started on this machine with ``ray start``, or ``ray://...``);
            ``None`` reads ``RAY_ADDRESS``. Ignored when the calling process is
            already connected (``ray.init`` done by the caller).
        resource: the custom resource each measuring task takes one unit of;
            ``None``: ``hwnas-device-<device>``.
        max_retries: times Ray runs a chunk again after its worker or node died.
        slow_ratio: a node is slow when its median reference latency exceeds
            the median of the other nodes' by this factor.
        chunks_per_slot: chunks shrink below ``interleave`` until every measuring
            slot gets at least this many (so the load balances), never below ``min_chunk``.
        min_chunk: the smallest chunk the fleet cuts (tasks per chunk).
        probe: measure the reference once on every node before the run and
            refuse mixed fingerprints up front (off: only chunk results are checked).
        connect_timeout_s: seconds to wait for the cluster's address to answer.
    """

    address: str | None = None
    resource: str | None = None
    max_retries: int = 3
    slow_ratio: float = 1.2
    chunks_per_slot: int = 2
    min_chunk: int = 4
    probe: bool = True
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        check_int("max_retries", self.max_retries, 0)
        for name in ("chunks_per_slot", "min_chunk"):
            check_int(name, getattr(self, name))
        if not (isinstance(self.slow_ratio, (int, float)) and self.slow_ratio > 1):
            raise InvalidConfig(f"slow_ratio must be a number > 1; got {self.slow_ratio!r}")
        if not self.connect_timeout_s > 0:
            raise InvalidConfig(f"connect_timeout_s must be > 0; got {self.connect_timeout_s!r}")
        if self.resource is not None and not (isinstance(self.resource, str) and self.resource.strip()):
            raise InvalidConfig(f"resource must be a non-empty resource name; got {self.resource!r}")

    def resource_for(self, device: str) -> str:
        return self.resource or default_resource(device)


@dataclass
class NodeStats:
    """What one node did in a run. Times in seconds, latencies in milliseconds."""

    node_id: str
    node_ip: str = ""
    hostname: str = ""
    chunks: int = 0
    records: int = 0
    busy_s: float = 0.0
    reference_ms: list[float] = field(default_factory=list)
    ratio: float | None = None  # median reference / median of the other nodes' medians
    slow: bool = False

    @property
    def short_id(self) -> str:
        return self.node_id[:8]

    @property
    def median_reference_ms(self) -> float:
        return float(statistics.median(self.reference_ms)) if self.reference_ms else float("nan")

    def throughput(self, wall_s: float) -> float:
        """Records per second of the run's wall time."""
        return self.records / wall_s if wall_s > 0 else 0.0


@dataclass
class FleetProgress:
    """Passed to ``on_progress`` after every chunk the driver has written."""

    done: int
    total: int
    wall_s: float
    nodes: dict[str, NodeStats]
    failed_chunks: int = 0


@dataclass
class FleetSummary(ProfileSummary):
    """A :class:`ProfileSummary` plus one :class:`NodeStats` per node and the fleet's own figures."""

    cluster: str = ""
    resource: str = ""
    slots: int = 0
    chunk_size: int = 0
    chunks: int = 0
    failed_chunks: int = 0
    failed_tasks: int = 0
    duplicates_dropped: int = 0
    append_s: float = 0.0
    nodes: list[NodeStats] = field(default_factory=list)

    @property
    def slow_nodes(self) -> list[NodeStats]:
        return [n for n in self.nodes if n.slow]


# --------------------------------------------------------------------- planning
def reference_architecture(space: SearchSpace | None, tasks: Sequence[Task]) -> Architecture:
    """The architecture every chunk measures beside its own, to compare nodes: the profile's drift reference
    (:func:`hwnas.profiling.reference.reference_architecture`, the middle value of every dimension)."""
    from hwnas.profiling.reference import reference_architecture as drift_reference

    if space is None and not tasks:
        raise InvalidConfig("nothing to profile: the plan is empty")
    return drift_reference(space, [t.arch for t in tasks])


def flag_slow_nodes(reference_ms: Mapping[str, Sequence[float]], slow_ratio: float) -> dict[str, float | None]:
    """Each node's median reference latency divided by the median of the *other* nodes' medians.

    Returns ``{node: ratio}``; ``None`` where there is no other node to compare with.
    A node is slow when its ratio exceeds ``slow_ratio``.
    """
    medians = {n: float(statistics.median(v)) for n, v in reference_ms.items() if len(v)}
    out: dict[str, float | None] = {}
    for node in reference_ms:
        others = [m for o, m in medians.items() if o != node]
        if node not in medians or not others:
            out[node] = None
            continue
        baseline = float(statistics.median(others))
        out[node] = medians[node] / baseline if baseline > 0 else None
    return out


# ---------------------------------------------------------------- worker side
def _node_identity() -> dict[str, Any]:
    import ray

    return {
        "node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address(),
        "hostname": socket.gethostname(), "pid": os.getpid(),
    }


def _fingerprint_override() -> dict[str, Any]:
    raw = os.environ.get(FINGERPRINT_TEST_HOOK)
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise InvalidConfig(f"{FINGERPRINT_TEST_HOOK} must hold a JSON object; got {raw!r}")
    return value


def _tasks_from_spec(items: Sequence[Sequence[Any]]) -> list[Task]:
    return [Task(Architecture.from_dict(a), Shape(int(b), int(s))) for a, b, s in items]


def _device_and_reference(spec: Mapping[str, Any]) -> tuple[Any, Task]:
    from hwnas.devices.registry import create_device

    device = create_device(spec["device"], threads=spec["threads"], dtype=spec["dtype"], seed=spec["seed"],
                           **spec.get("options", {}))
    return device, _tasks_from_spec([spec["reference"]])[0]


def _measure_chunk(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs on a measuring node: measure one chunk plus the reference, interleaved.

    ``spec`` holds plain data only (architectures as dicts). Returns the
    records and where and how long they were measured.
    """
    start = time.perf_counter()
    node = _node_identity()
    device, reference = _device_and_reference(spec)
    tasks = _tasks_from_spec(spec["tasks"])
    # The reference is timed in the same interleaved rounds (the runner stores reference_ms and the
    # per-round reference_ratio with every record), so nodes and drifts compare on one footing.
    records = measure_tasks(device, tasks, TimingConfig(**spec["timing"]), seed=spec["chunk_seed"],
                            extra=spec["extra"], reference=reference)
    override = _fingerprint_override()
    for r in records:
        if override:
            r["fingerprint"] = {**r["fingerprint"], **override}
        r.update(node_id=node["node_id"], node_ip=node["node_ip"], worker_pid=node["pid"])
    return {
        **node, "records": records, "reference_ms": records[0]["reference_ms"],
        "fingerprint": {**records[0]["fingerprint"], **override}, "task_s": time.perf_counter() - start,
    }


def _probe_node(spec: dict[str, Any]) -> dict[str, Any]:
    """Runs once on every measuring node before the run: its identity, fingerprint and reference latency."""
    node = _node_identity()
    device, reference = _device_and_reference(spec)
    (record,) = measure_tasks(device, [reference], TimingConfig(**spec["timing"]), seed=spec["seed"])
    return {**node, "fingerprint": {**record["fingerprint"], **_fingerprint_override()},
            "reference_ms": record["latency_ms"]}


# ---------------------------------------------------------------- driver side
def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(f"--cluster ray needs Ray, which is not installed: {_RAY_HINT}") from None
    return ray


def _check_reachable(address: str, timeout_s: float) -> None:
    """A fast, one-line failure for an address nobody answers on (ray.init would wait a long time)."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"Ray address must be HOST:PORT, 'auto' or ray://HOST:PORT; got {address!r}")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(
            f"cannot reach a Ray cluster at {address} ({reason}); start one with `ray start --head` "
            f"or fix --ray-address / RAY_ADDRESS"
        ) from None


def connect(fleet: FleetConfig) -> tuple[Any, bool]:
    """Join the cluster. Returns ``(ray module, whether this call connected)``."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray, False
    address = fleet.address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ClusterError(
            "--cluster ray needs the cluster's address: pass --ray-address HOST:PORT or set RAY_ADDRESS "
            "(docs/fleet.md shows how to start a cluster)"
        )
    _check_reachable(address, fleet.connect_timeout_s)
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None
    return ray, True


#: Devices that run on a GPU: their tasks also take one Ray GPU, so Ray sets CUDA_VISIBLE_DEVICES
#: and two workers on one host never share a GPU.
GPU_DEVICES = ("cuda", "onnxruntime-cuda", "tensorrt")


def _task_options(device: str, resource: str, max_retries: int) -> dict[str, Any]:
    # num_cpus=0: the device resource is the lock; Ray's CPU count must not block or co-locate measurements.
    return {"num_cpus": 0, "num_gpus": 1 if device in GPU_DEVICES else 0, "resources": {resource: 1},
            "max_retries": max_retries, "retry_exceptions": False}


def _task_spec(task: Task) -> list[Any]:
    return [task.arch.as_dict(), task.shape.batch_size, task.shape.seq_len]


def _base_spec(device: Any, seed: int, timing: TimingConfig, reference: Task) -> dict[str, Any]:
    """What every task of a run is sent: the device settings, the timing protocol and the reference."""
    return {"device": device.name, "threads": device.threads, "dtype": device.dtype, "seed": seed,
            "options": device.options(), "timing": asdict(timing), "reference": _task_spec(reference)}


def _chunk_spec(base: Mapping[str, Any], chunk: Sequence[Task], chunk_no: int,
                extra: Mapping[str, Any]) -> dict[str, Any]:
    return {**base, "tasks": [_task_spec(t) for t in chunk], "chunk_seed": base["seed"] * 100003 + chunk_no,
            "extra": {**extra, "chunk": chunk_no}}


def _device_nodes(ray: Any, resource: str) -> list[dict[str, Any]]:
    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(resource, 0) >= 1]


def _describe_fingerprint_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}={a.get(k)!r} vs {b.get(k)!r}" for k in keys[:4]) + (" ..." if len(keys) > 4 else "")


def _fingerprint_key(fp: Mapping[str, Any]) -> str:
    return json.dumps(fp, sort_keys=True, default=str)


def _refuse_mixed(results: Sequence[Mapping[str, Any]], resource: str) -> None:
    """Refuse node results (``node_id``, ``fingerprint``) that are not all from one kind of machine."""
    groups: dict[str, list[str]] = {}
    fingerprints: dict[str, Mapping[str, Any]] = {}
    for res in results:
        key = _fingerprint_key(res["fingerprint"])
        groups.setdefault(key, []).append(res["node_id"])
        fingerprints[key] = res["fingerprint"]
    if len(groups) < 2:
        return
    (first_key, first_nodes), *others = groups.items()
    parts = [f"node(s) {', '.join(n[:8] for n in nodes)} differ from {', '.join(n[:8] for n in first_nodes)} in "
             + _describe_fingerprint_difference(fingerprints[first_key], fingerprints[key]) for key, nodes in others]
    raise ClusterError(
        f"nodes offering {resource} are not all the same kind of machine: {'; '.join(parts)}; "
        f"declare one resource per hardware kind and profile each with --resource"
    )


def _unwrap(exc: BaseException) -> BaseException:
    """The hwnas error a remote task raised, if that is what failed."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, HwnasError) else exc


def _reraise_own(exc: BaseException) -> None:
    """Raise the hwnas error that failed (a remote task's, unwrapped) as itself, in one line."""
    cause = _unwrap(exc)
    if isinstance(cause, HwnasError):
        raise cause from None


def _chunk_size(todo: int, slots: int, config: ProfileConfig, fleet: FleetConfig) -> int:
    """At most ``interleave`` tasks, fewer until every slot gets ``chunks_per_slot`` chunks, never below ``min_chunk``."""
    balanced = math.ceil(todo / max(1, slots * fleet.chunks_per_slot)) if todo else 1
    return max(1, min(config.interleave, max(fleet.min_chunk, balanced)))


def profile_on_cluster(
    config: ProfileConfig, out: str | Path, fleet: FleetConfig | None = None, *, resume: bool = False,
    on_start: Callable[[int, int], None] | None = None, on_record: Callable[[dict[str, Any]], None] | None = None,
    on_status: Callable[[str], None] | None = None, on_progress: Callable[[FleetProgress], None] | None = None,
) -> FleetSummary:
    """Profile ``config`` into ``out`` on a Ray cluster; the calling process is the only writer.

    Args:
        fleet: the cluster and its policies (:class:`FleetConfig`).
        resume, on_start, on_record, on_status: as :func:`hwnas.profiling.profile`.
        on_progress: called after every chunk written, with per-node counts and times.

    Raises:
        ClusterError: Ray is missing, the cluster cannot be reached, no node offers
            the device resource, or nodes of different fingerprints offer it.
        ProfileStoreError: as a local run (existing file without ``resume``,
            other settings or another kind of machine in the file).
        HwnasError: an error raised while measuring on a node (its own message).
        KeyboardInterrupt: re-raised after the chunks already returned are written.
    """
    fleet = fleet or FleetConfig()
    out = Path(out)
    store = ProfileStore(out)
    store.check_writable()
    existing = open_profile(store, resume)
    space, tasks = plan_tasks(config)
    # Validate the device settings here; availability is each node's question.
    from hwnas.devices.registry import build_device

    device = build_device(config.device, threads=config.threads, dtype=config.dtype, seed=config.seed,
                          **config.device_options)
    check_resume(existing, out, device, config.timing.clock)
    with store.lock():  # one writer per profile, local or fleet
        ray, connected_here = connect(fleet)
        try:
            run = _FleetRun(ray, config, fleet, store, space, tasks, existing, device,
                            on_start=on_start, on_record=on_record, on_status=on_status, on_progress=on_progress)
            run.check_nodes()
            if fleet.probe:
                run.probe()
            return run.measure()
        finally:
            if connected_here:
                ray.shutdown()


class _FleetRun:
    """One profile on the cluster, in the order :meth:`check_nodes`, :meth:`probe`, :meth:`measure`.

    Holds what the driver knows: the store and the keys in it, the fleet's
    fingerprint, the chunks in flight and each node's figures.
    """

    def __init__(self, ray, config: ProfileConfig, fleet: FleetConfig, store: ProfileStore,
                 space: SearchSpace | None, tasks: list[Task], existing: list[dict[str, Any]], device,
                 *, on_start=None, on_record=None, on_status=None, on_progress=None) -> None:
        self.ray, self.config, self.fleet, self.store = ray, config, fleet, store
        self.existing, self.device = existing, device
        self.on_start, self.on_record, self.on_status, self.on_progress = on_start, on_record, on_status, on_progress
        self.resource = fleet.resource_for(device.name)
        self.done = {stored_key(r) for r in existing}
        self.todo = [t for t in tasks if record_key(t.arch, t.shape.batch_size, t.shape.seq_len, device.name,
                                                    device.dtype, device.threads) not in self.done]
        self.space = space
        self.reference = Task(reference_architecture(space, tasks), config.shapes()[0])
        self.base_spec = _base_spec(device, config.seed, config.timing, self.reference)
        self.summary = FleetSummary(out=str(store.path), planned=len(tasks), skipped=len(tasks) - len(self.todo),
                                    measured=0, cluster=str(ray.get_runtime_context().gcs_address),
                                    resource=self.resource)
        self.stats: dict[str, NodeStats] = {}
        self.fingerprint: dict[str, Any] | None = None
        self.nodes: list[dict[str, Any]] = []

    def _status(self, message: str) -> None:
        if self.on_status:
            self.on_status(message)

    def _node(self, info: Mapping[str, Any]) -> NodeStats:
        ns = self.stats.get(info["node_id"])
        if ns is None:
            ns = self.stats[info["node_id"]] = NodeStats(info["node_id"], info.get("node_ip", ""), info.get("hostname", ""))
        return ns

    def check_nodes(self) -> None:
        """Refuse a cluster where no live node offers the device resource."""
        self.nodes = _require_nodes(self.ray, self.resource)
        self.summary.slots = int(sum(n["Resources"][self.resource] for n in self.nodes))

    def probe(self) -> None:
        """One task per node: fingerprints must agree (and match the file), and each node gets a first reference."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._status(f"probing {len(self.nodes)} node(s) offering {self.resource}")
        probe = self.ray.remote(_probe_node)
        refs = [
            probe.options(**_task_options(self.device.name, self.resource, self.fleet.max_retries),
                          scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(self.base_spec)
            for n in self.nodes
        ]
        results = []
        for node, ref in zip(self.nodes, refs, strict=True):
            try:
                results.append(self.ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - a remote failure: report hwnas errors as themselves
                _reraise_own(exc)
                if not _is_system_failure(self.ray, exc):
                    raise ClusterError(f"probing node {node['NodeID'][:8]} failed: {str(exc).splitlines()[0]}") from None
                # A node that died (or is dying) since the cluster listed it: the run goes on without it.
                self._status(f"node {node['NodeID'][:8]} is gone ({type(exc).__name__}); going on without it")
        if not results:
            raise ClusterError(f"every node offering {self.resource} died while being probed")
        _refuse_mixed(results, self.resource)
        for res in results:
            self._node(res).reference_ms.append(res["reference_ms"])
        self._adopt_fingerprint(results[0]["fingerprint"])

    def _adopt_fingerprint(self, fingerprint: dict[str, Any]) -> None:
        self.fingerprint = fingerprint
        check_resume(self.existing, self.store.path, self.device, None)
        for r in self.existing:
            fp = r.get("fingerprint")
            if isinstance(fp, dict) and _fingerprint_key(fp) != _fingerprint_key(fingerprint):
                raise ProfileStoreError(
                    f"{self.store.path} was measured on another kind of machine than this fleet's ("
                    f"{_describe_fingerprint_difference(fp, fingerprint)}); write this fleet's profile to another --out"
                )

    def measure(self) -> FleetSummary:
        """Send the chunks, two per slot in flight, and append each chunk's records as it returns."""
        config, summary = self.config, self.summary
        summary.chunk_size = _chunk_size(len(self.todo), summary.slots, config, self.fleet)
        chunks = chunk_tasks(self.todo, summary.chunk_size, config.max_chunk_mb, self.device.dtype)
        summary.chunks = len(chunks)
        if self.on_start:
            self.on_start(len(self.todo), summary.skipped)
        extra = {"space": self.space.name if self.space else None, "run_id": uuid.uuid4().hex[:12]}
        remote = self.ray.remote(_measure_chunk).options(**_task_options(self.device.name, self.resource,
                                                                         self.fleet.max_retries))
        # Every slot busy with one chunk queued behind it; more in flight only costs more on a driver kill.
        max_in_flight = 2 * summary.slots
        pending: dict[Any, tuple[int, list[Task]]] = {}
        next_chunk = 0
        start = time.perf_counter()
        try:
            while next_chunk < len(chunks) or pending:
                while next_chunk < len(chunks) and len(pending) < max_in_flight and summary.stopped == "done":
                    if next_chunk and config.time_budget_s is not None and time.perf_counter() - start >= config.time_budget_s:
                        summary.stopped = "time budget"
                        break
                    spec = _chunk_spec(self.base_spec, chunks[next_chunk], next_chunk, extra)
                    pending[remote.remote(spec)] = (next_chunk, chunks[next_chunk])
                    next_chunk += 1
                if not pending:
                    break
                (ref,), _ = self.ray.wait(list(pending), num_returns=1)
                chunk_no, chunk = pending.pop(ref)
                try:
                    result = self.ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - Ray's own failures are many classes
                    self._failed(chunk_no, chunk, exc)
                    continue
                self._write(result)
                if self.on_progress:
                    self.on_progress(FleetProgress(done=summary.measured, total=len(self.todo),
                                                   wall_s=time.perf_counter() - start, nodes=self.stats,
                                                   failed_chunks=summary.failed_chunks))
        except BaseException:
            if summary.stopped == "done":
                summary.stopped = "interrupted"
            for ref in pending:
                self.ray.cancel(ref, force=True)
            raise
        finally:
            summary.wall_s = time.perf_counter() - start
            _update_ratios(self.stats, self.fleet.slow_ratio)
            summary.nodes = sorted(self.stats.values(), key=lambda s: s.node_id)
            _fill_summary(summary)
        return summary

    def _failed(self, chunk_no: int, chunk: list[Task], exc: Exception) -> None:
        """A chunk that did not come back: hwnas's own errors stop the run; a dead worker or node after every retry does not."""
        _reraise_own(exc)
        if not _is_system_failure(self.ray, exc):
            raise ProfilingError(f"measuring chunk {chunk_no} failed on the cluster: "
                                 f"{str(exc).strip().splitlines()[-1]}") from None
        self.summary.failed_chunks += 1
        self.summary.failed_tasks += len(chunk)
        self._status(f"chunk {chunk_no} failed after {self.fleet.max_retries} retries "
                     f"({type(exc).__name__}); it is left for --resume")

    def _write(self, result: dict[str, Any]) -> None:
        """Append one chunk's records (the only write to the store), flagged with its node's standing."""
        fp = result["fingerprint"]
        if self.fingerprint is None:
            self._adopt_fingerprint(fp)
        elif _fingerprint_key(fp) != _fingerprint_key(self.fingerprint):
            raise ClusterError(
                f"node {result['node_id'][:8]} ({result['node_ip']}) is another kind of machine than the fleet's "
                f"first ({_describe_fingerprint_difference(self.fingerprint, fp)}); its chunk was not written; "
                f"declare one resource per hardware kind and profile each with --resource"
            )
        ns = self._node(result)
        ns.chunks += 1
        ns.busy_s += result["task_s"]
        ns.reference_ms.append(result["reference_ms"])
        _update_ratios(self.stats, self.fleet.slow_ratio)
        fresh = []
        for r in result["records"]:
            key = stored_key(r)
            if key in self.done:  # cannot happen with one writer; kept as the last line of defence
                self.summary.duplicates_dropped += 1
                continue
            self.done.add(key)
            r["node_ratio"], r["node_slow"] = ns.ratio, ns.slow
            fresh.append(r)
        t0 = time.perf_counter()
        self.store.append(fresh)
        self.summary.append_s += time.perf_counter() - t0
        ns.records += len(fresh)
        self.summary.measured += len(fresh)
        self.summary.records.extend(fresh)
        if self.on_record:
            for r in fresh:
                self.on_record(r)


def measure_on_cluster(
    tasks: Sequence[Task], *, device: str, threads: int | None = 1, dtype: str = "fp32",
    timing: TimingConfig | None = None, seed: int = 0, interleave: int = 8, fleet: FleetConfig | None = None,
    reference: Task | None = None, options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Measure ``tasks`` on the cluster's nodes in parallel chunks; return one record per task, in order.

    The building block for measuring a handful of architectures on a fleet
    (verifying a search front) without a profile file: chunks of ``interleave``
    tasks, each measured with the reference architecture on one node, retried as
    :func:`profile_on_cluster` does. Records carry ``node_id`` and ``reference_ms``
    (the reference timed in the same rounds on the same node, so a per-chunk drift
    can be computed from it). The calling process is the only one that sees the
    results; nothing is written.

    Args:
        reference: the task timed in every chunk beside the others (a predictor's
            drift reference); default: the middle of the tasks' values.
        options: the device's own options (``cuda_graphs``...), as :func:`~hwnas.devices.create_device` takes them.

    Raises:
        ClusterError: as :func:`profile_on_cluster`, and when nodes of different
            fingerprints measured the tasks.
        ProfilingError: a chunk failed on every retry.
    """
    fleet = fleet or FleetConfig()
    if not tasks:
        raise InvalidConfig("nothing to measure: no tasks given")
    check_int("interleave", interleave)
    from hwnas.devices.registry import build_device

    dev = build_device(device, threads=threads, dtype=dtype, seed=seed, **(options or {}))
    resource = fleet.resource_for(dev.name)
    reference = reference or Task(reference_architecture(None, tasks), tasks[0].shape)
    ray, connected_here = connect(fleet)
    try:
        _require_nodes(ray, resource)
        remote = ray.remote(_measure_chunk).options(**_task_options(dev.name, resource, fleet.max_retries))
        base = _base_spec(dev, seed, timing or TimingConfig(), reference)
        refs = [remote.remote(_chunk_spec(base, tasks[offset: offset + interleave], chunk_no, {}))
                for chunk_no, offset in enumerate(range(0, len(tasks), interleave))]
        try:
            results = ray.get(refs)
        except Exception as exc:  # noqa: BLE001 - a remote failure: report hwnas errors as themselves
            _reraise_own(exc)
            raise ProfilingError(f"measuring on the cluster failed: {str(exc).strip().splitlines()[-1]}") from None
    finally:
        if connected_here:
            ray.shutdown()
    _refuse_mixed(results, resource)
    return [r for res in results for r in res["records"]]


def _require_nodes(ray: Any, resource: str) -> list[dict[str, Any]]:
    """The live nodes offering ``resource``; a one-line :class:`ClusterError` naming what is offered when none does."""
    nodes = _device_nodes(ray, resource)
    if not nodes:
        offered = sorted(k for k in ray.cluster_resources() if k.startswith("hwnas-"))
        raise ClusterError(
            f"no live node of the Ray cluster offers the resource {resource!r}; start nodes with "
            f"`ray start --address=HEAD:PORT --resources='{{\"{resource}\": 1}}'`"
            + (f" (offered: {', '.join(offered)})" if offered else "")
        )
    return nodes


def check_cluster(fleet: FleetConfig, resource: str, *, gpus: bool = False) -> int:
    """Fail fast, before hours of work: Ray installed, the cluster reachable, some live node offering
    ``resource`` (and, with ``gpus``, a GPU). Returns the number of such nodes; leaves no connection behind
    that this call made.

    Raises:
        ClusterError: one line naming what is missing and how to provide it.
    """
    ray, connected_here = connect(fleet)
    try:
        nodes = _require_nodes(ray, resource)
        if gpus:
            nodes = [n for n in nodes if n.get("Resources", {}).get("GPU", 0) >= 1]
            if not nodes:
                raise ClusterError(f"no live node of the Ray cluster offers both {resource!r} and a GPU; start GPU "
                                   f"nodes with `ray start --num-gpus=N --resources='{{\"{resource}\": N}}'`, or "
                                   f"train on the CPU (--train-device cpu)")
        return len(nodes)
    finally:
        if connected_here:
            ray.shutdown()


def verify_fleet(device: str, settings: Mapping[str, Any], address: str | None = None,
                 resource: str | None = None) -> FleetConfig:
    """The :class:`FleetConfig` for ``hwnas search --verify DEVICE --cluster ray``, checked before the search runs:
    a known device with valid settings, Ray installed, the cluster reachable, a node offering the device.

    ``settings``: ``{"threads": .., "dtype": ..}`` of the predictor's measurements.
    """
    from hwnas.devices.registry import get_device_class

    dev = get_device_class(device)(threads=settings.get("threads"), dtype=settings.get("dtype") or "fp32")
    fleet = FleetConfig(address=address, resource=resource)
    check_cluster(fleet, fleet.resource_for(dev.name), gpus=dev.name in GPU_DEVICES)
    return fleet


def _update_ratios(stats: Mapping[str, NodeStats], slow_ratio: float) -> None:
    ratios = flag_slow_nodes({n: s.reference_ms for n, s in stats.items()}, slow_ratio)
    for node_id, ns in stats.items():
        ns.ratio = ratios.get(node_id)
        ns.slow = ns.ratio is not None and ns.ratio > slow_ratio


def _is_system_failure(ray: Any, exc: BaseException) -> bool:
    """A dead worker, node or lost object (retried by Ray already), not an error in hwnas's own code."""
    kinds = tuple(
        getattr(ray.exceptions, name)
        for name in ("WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
                     "TaskUnschedulableError", "RaySystemError", "LocalRayletDiedError", "OutOfMemoryError")
        if hasattr(ray.exceptions, name)
    )
    return isinstance(exc, kinds)
