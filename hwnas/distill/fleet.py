"""Distil the best students of a search front in parallel: one Ray task per student.

``distill_front(search_dir, top_k, base, out)`` reads the search's ``front.json``,
takes its ``top_k`` architectures by score and distils each with the public
:func:`hwnas.distill.distill` into its own folder ``<out>/<L..-H..-A..-I..>/``:

* **one writer per folder**: a student's folder is written only by the task that
  distils it; the driver (the calling process) writes only ``<out>/plan/`` (one
  winner-format file per student, so every student's report keeps the search's
  device, shape and budget) and ``<out>/fleet.json`` (what ran where). A lock file
  stops a second driver on the same ``out``.
* **the teacher once**: students of one task share one fine-tuned teacher. It is
  fine-tuned (or found in the cache) by one task before the students start, into
  ``<out>/teachers/``, the cache every student then reuses; students never race
  to fine-tune it.
* **resumable**: a student folder holding a finished report with the same
  settings is skipped without starting a task; an unfinished one resumes from its
  checkpoint (:func:`hwnas.distill.distill` does that). Killing the driver kills
  its tasks (Ray ends a job's tasks with its driver); rerunning continues.
* **faults**: a task whose worker or node died is run again by Ray
  (``max_retries``), resuming from the student's last checkpoint.
* **resources**: a student task takes ``cpus`` Ray CPUs and, when training on
  ``cuda``, one Ray GPU (Ray sets ``CUDA_VISIBLE_DEVICES``, so two students never
  share a GPU). With ``measure`` it also takes one unit of the measuring resource
  (``hwnas-device-<device>``), so the node measures the student's latency alone.

On a cluster of several machines ``out`` (and the task files) must be on a
filesystem every node sees (NFS, a mounted bucket): each task checks that it
can see the driver's plan and refuses with one line if it cannot.

``cluster="local"`` distils the students one after another in this process
(no Ray needed).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from hwnas._files import atomic_write_text
from hwnas.errors import ClusterError, HwnasError, InvalidConfig, InvalidData
from hwnas.progress import ProgressCallback, StatusCallback, emit
from hwnas.space import Architecture

__all__ = [
    "FLEET_FILE",
    "PLAN_DIR",
    "TRAIN_RESOURCE_DEVICES",
    "FrontDistillSummary",
    "Student",
    "distill_front",
    "front_students",
]

FLEET_FILE = "fleet.json"
PLAN_DIR = "plan"
LOCK_FILE = ".distill-front.lock"
#: the training devices a student task can ask Ray for
TRAIN_RESOURCE_DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Student:
    """One front member to distil: its architecture, search record and folders."""

    rank: int
    arch: Architecture
    record: dict[str, Any]
    folder: Path
    plan_file: Path

    @property
    def name(self) -> str:
        return self.arch.short


@dataclass
class FrontDistillSummary:
    """What :func:`distill_front` did. ``reports`` maps a student's name to its report."""

    out: Path
    students: list[Student]
    skipped: list[str]
    reports: dict[str, dict[str, Any]]
    nodes: dict[str, str]
    teacher: dict[str, Any] | None
    wall_s: float
    cluster: str
    #: the GPU ids Ray assigned to each student's task (``""``: none; ``None``: not run on Ray)
    gpu_ids: dict[str, str | None] = field(default_factory=dict)


def front_students(search_dir: str | Path, top_k: int, out: str | Path) -> list[Student]:
    """The ``top_k`` architectures of ``search_dir/front.json`` by score (best first), as students in ``out``.

    Each student's search record has the winner file's context (device, shape,
    budget, predictor, supernet) with the front member's own architecture, score
    and predicted latency.

    Raises:
        InvalidData: no search folder, a missing or malformed ``front.json``, an empty front.
        InvalidConfig: ``top_k`` below 1.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InvalidConfig(f"top_k must be an integer >= 1; got {top_k!r}")
    search_dir, out = Path(search_dir), Path(out)
    front_file = search_dir / "front.json"
    if not front_file.is_file():
        raise InvalidData(f"{search_dir}: no front.json; give the --out folder of a finished hwnas search")
    try:
        front = json.loads(front_file.read_text(encoding="utf-8"))
        members = front["front"]
        if not isinstance(members, list):
            raise TypeError("'front' is not a list")
        entries = [(Architecture.from_dict(m["arch"]), m) for m in members]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidData(f"{front_file}: not a search front ({type(exc).__name__}: {exc})") from None
    if not entries:
        raise InvalidData(f"{front_file}: the front is empty (no feasible architecture was evaluated)")
    context: dict[str, Any] = {}
    winner_file = search_dir / "winner.json"
    if winner_file.is_file():
        try:
            context = json.loads(winner_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InvalidData(f"{winner_file}: not valid JSON ({exc})") from None
    context.setdefault("budget_ms", front.get("budget_ms"))
    context.setdefault("space", front.get("space"))
    entries.sort(key=lambda e: (-float(e[1].get("score", float("-inf"))), float(e[1].get("latency_ms", 0.0))))
    students, seen = [], set()
    for arch, member in entries:
        if arch in seen:
            continue
        seen.add(arch)
        record = {**{k: v for k, v in context.items() if k not in ("arch", "reward")},
                  **{k: member[k] for k in ("score", "latency_ms", "latency_upper_ms", "params", "reward") if k in member},
                  "arch": arch.as_dict(), "front_rank": len(students) + 1, "search_dir": str(search_dir)}
        students.append(Student(len(students) + 1, arch, record, out / arch.short, out / PLAN_DIR / f"{arch.short}.json"))
        if len(students) == top_k:
            break
    return students


# ----------------------------------------------------------------- config as plain data
def _config_to_plain(config: Any) -> dict[str, Any]:
    """A :class:`DistillConfig` as JSON-able data (the arch as a path or key), for a task on another node."""
    d = {f.name: getattr(config, f.name) for f in fields(config)}
    d["losses"] = config.losses.to_dict()
    d["arch"] = d["arch"].key if isinstance(d["arch"], Architecture) else str(d["arch"])
    return json.loads(json.dumps(d, default=str))


def _config_from_plain(d: dict[str, Any]) -> Any:
    from hwnas.distill.api import DistillConfig
    from hwnas.distill.losses import LossConfig

    return DistillConfig(**{**d, "losses": LossConfig.from_dict(d["losses"])})


def _student_config(base: Any, student: Student) -> Any:
    """``base`` for one student: its plan file as the architecture (so its report keeps the search's record)."""
    return replace(base, arch=str(student.plan_file), cache_dir=base.cache_dir or str(student.folder.parent / "teachers"))


def _finished(student: Student, config: Any) -> bool:
    """A finished report with these settings is in the student's folder (the folder is skipped)."""
    from hwnas.distill.api import CONFIG_FILE, REPORT_FILE

    cfg_file, report = student.folder / CONFIG_FILE, student.folder / REPORT_FILE
    if not cfg_file.is_file():
        return False
    try:
        previous = json.loads(cfg_file.read_text(encoding="utf-8"))
    except ValueError:
        raise InvalidData(f"{cfg_file}: not valid JSON; remove the folder {student.folder} to distil it again") from None
    wanted = json.loads(json.dumps(config.to_dict(), default=str))
    if previous != wanted:
        changed = sorted(k for k in set(previous) | set(wanted) if previous.get(k) != wanted.get(k))
        raise InvalidConfig(f"{student.folder} holds a distillation with other settings (changed: {', '.join(changed)}); "
                            "choose another --out, or remove that folder")
    return report.is_file()


@contextmanager
def _driver_lock(out: Path) -> Iterator[None]:
    """One driver per output folder (an advisory lock; the holder's PID and host are in the file)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
            raise InvalidConfig(f"{out} is being written by another distill-front driver ({holder}); wait for it "
                                "or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextmanager
def _folder_lock(folder: Path, wait_s: float = 120.0) -> Iterator[None]:
    """The one-writer lock of a student folder, held by the task distilling it.

    A task of a killed driver can outlive it by a few seconds (until Ray notices);
    the rerun's task waits here for it to die (the lock goes with its process)
    instead of writing beside it.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    locks = folder.parent / ".locks"  # beside the folder, so the student's own files stay its own
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / f"{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise InvalidConfig(f"{folder} is still being written by another process after {wait_s:.0f} s") from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)


# ----------------------------------------------------------------- worker side
def _prepare_teacher(plain: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune the task teacher into the shared cache once (or find it there), as ``distill`` would."""
    from transformers import AutoConfig

    from hwnas.distill.api import load_data, teacher_train_config
    from hwnas.distill.models import resolve_teacher
    from hwnas.distill.teacher import finetune_teacher, task_head_labels

    _check_visible(plain)
    config = _config_from_plain(plain)
    train_data, eval_data, _ = load_data(config)
    base = resolve_teacher(config.teacher)
    base_cfg = AutoConfig.from_pretrained(base)
    if task_head_labels(base_cfg) == train_data.num_labels:
        return {"path": str(base), "fine_tuned": False, "reused": True}  # already a task teacher: used as is
    teacher = finetune_teacher(base, train_data, eval_data, teacher_train_config(config), config.cache_dir,
                               max_len=config.max_len)
    return {"path": str(teacher.path), "fine_tuned": True, "reused": teacher.reused, "metrics": teacher.metrics}


def _check_visible(plain: dict[str, Any]) -> None:
    if not Path(plain["arch"]).is_file():
        raise ClusterError(f"node {socket.gethostname()} cannot see {plain['arch']}: the output folder must be on a "
                           "filesystem every node mounts (docs/fleet.md)")


def _distill_student(plain: dict[str, Any], folder: str, threads: int | None, in_ray: bool = True) -> dict[str, Any]:
    """Runs in a Ray task: distil one student into ``folder`` (its only writer) and return where it ran."""
    import torch

    from hwnas.distill.api import distill

    _check_visible(plain)
    config = _config_from_plain(plain)
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    with _folder_lock(Path(folder)):
        report = distill(config, folder)
    node = "local"
    if in_ray:
        import ray

        node = ray.get_runtime_context().get_node_id()
    return {"report": report, "node_id": node, "hostname": socket.gethostname(), "pid": os.getpid(),
            "task_s": time.perf_counter() - start, "cuda": torch.cuda.is_available(),
            # the GPUs Ray gave this task (it sets CUDA_VISIBLE_DEVICES to them; "" when it gave none)
            "gpu_ids": os.environ.get("CUDA_VISIBLE_DEVICES") if in_ray else None}


# ----------------------------------------------------------------- driver side
def distill_front(
    search_dir: str | Path,
    top_k: int,
    base: Any,
    out: str | Path | None = None,
    *,
    cluster: str = "ray",
    fleet: Any = None,
    train_device: str = "cpu",
    cpus: int = 1,
    max_retries: int = 2,
    on_status: StatusCallback | None = None,
    on_progress: ProgressCallback | None = None,
) -> FrontDistillSummary:
    """Distil the ``top_k`` best students of a search front, each into its own folder under ``out``.

    Args:
        search_dir: the ``--out`` folder of a finished ``hwnas search`` (its ``front.json``).
        top_k: how many front members, best score first.
        base: a :class:`~hwnas.distill.api.DistillConfig` with the task and recipe;
            its ``arch`` is replaced by each student's (give any, e.g. the winner).
        out: where the students go (default: ``<search_dir>/students``).
        cluster: ``"ray"`` (one task per student on the cluster of ``fleet``) or
            ``"local"`` (one after another in this process).
        fleet: a :class:`~hwnas.profiling.fleet.FleetConfig` (address, measuring
            resource); default: ``RAY_ADDRESS``.
        train_device: ``"cuda"`` (each task takes one Ray GPU) or ``"cpu"``.
        cpus: Ray CPUs per student task (and its torch threads on the CPU).
        max_retries: times Ray runs a student again after its worker or node died.
        on_status: one line per event (teacher ready, student done, skipped).
        on_progress: ``ProgressEvent("students", done, total)`` after every student.

    Returns:
        a :class:`FrontDistillSummary`; ``<out>/fleet.json`` holds the same.

    Raises:
        InvalidData / InvalidConfig: a bad search folder, settings that disagree
            with a student folder already there, bad resources.
        ClusterError: Ray missing, the cluster unreachable, no node with the
            resources asked for, or a folder the nodes cannot see.
    """
    if cluster not in ("ray", "local"):
        raise InvalidConfig(f"cluster must be 'ray' or 'local'; got {cluster!r}")
    if train_device not in TRAIN_RESOURCE_DEVICES:
        raise InvalidConfig(f"train_device must be one of {', '.join(TRAIN_RESOURCE_DEVICES)}; got {train_device!r}")
    if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
        raise InvalidConfig(f"cpus must be an integer >= 1; got {cpus!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidConfig(f"max_retries must be an integer >= 0; got {max_retries!r}")
    out = Path(out) if out is not None else Path(search_dir) / "students"
    students = front_students(search_dir, top_k, out)
    base = replace(base, cache_dir=base.cache_dir or str(out / "teachers"))
    start = time.perf_counter()
    ray, connected_here = None, False
    if cluster == "ray":  # the cluster's problems are found before anything is written
        from hwnas.profiling.fleet import FleetConfig, connect

        fleet = fleet or FleetConfig()
        ray, connected_here = connect(fleet)
    try:
        return _distill_front(students, base, out, ray, cluster, fleet, train_device, cpus, max_retries, start,
                              on_status, on_progress)
    finally:
        if ray is not None and connected_here:
            ray.shutdown()


def _measuring_resource(base: Any, students: Sequence[Student], fleet: Any) -> dict[str, int]:
    """With ``measure``, a student task also takes one unit of the node's measuring resource: a student
    measured beside another one training on its node would be timed on shared cores."""
    if not base.measure:
        return {}
    device = base.device or students[0].record.get("device") or "cpu"
    return {fleet.resource_for(device): 1}


def _distill_front(students, base, out, ray, cluster, fleet, train_device, cpus, max_retries, start, on_status,
                   on_progress) -> FrontDistillSummary:
    if ray is not None:
        _check_resources(ray, cpus, 1 if train_device == "cuda" else 0, _measuring_resource(base, students, fleet))
    with _driver_lock(out):
        # the plan first: every student's search record, written by the driver only
        for s in students:
            text = json.dumps(s.record, indent=2, default=str) + "\n"
            if not s.plan_file.is_file() or s.plan_file.read_text(encoding="utf-8") != text:
                s.plan_file.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(s.plan_file, text)
        configs = {s.name: _student_config(base, s) for s in students}
        # settings that disagree with a folder already there fail now, before any training
        skipped = [s.name for s in students if _finished(s, configs[s.name])]
        todo = [s for s in students if s.name not in skipped]
        summary = FrontDistillSummary(out, students, skipped, {}, {}, None, 0.0, cluster)
        for name in skipped:
            summary.reports[name] = json.loads((out / name / "report.json").read_text(encoding="utf-8"))
            summary.nodes[name] = "(finished before)"
            if on_status:
                on_status(f"{name}: finished before, skipped")
        emit(on_progress, "students", len(skipped), len(students))
        if todo:
            if cluster == "local":
                _run_local(todo, configs, summary, cpus, on_status, on_progress)
            else:
                _run_ray(ray, todo, configs, base, summary, fleet, train_device, cpus, max_retries, on_status,
                         on_progress)
        summary.wall_s = time.perf_counter() - start
        _write_fleet_file(summary, configs)
    return summary


def _write_fleet_file(summary: FrontDistillSummary, configs: dict[str, Any]) -> None:
    students = []
    for s in summary.students:
        r = summary.reports.get(s.name) or {}
        students.append({"name": s.name, "rank": s.rank, "arch": s.arch.as_dict(), "folder": str(s.folder),
                         "search_score": s.record.get("score"), "predicted_latency_ms": s.record.get("latency_ms"),
                         "status": "skipped" if s.name in summary.skipped else ("done" if r else "missing"),
                         "node": summary.nodes.get(s.name), "gpu_ids": summary.gpu_ids.get(s.name),
                         "student_score": r.get("student_score"),
                         "teacher_score": r.get("teacher_score"), "retained": r.get("retained")})
    atomic_write_text(summary.out / FLEET_FILE, json.dumps({
        "cluster": summary.cluster, "students": students, "teacher": summary.teacher, "wall_s": summary.wall_s,
    }, indent=2, default=str) + "\n")


def _run_local(todo: Sequence[Student], configs: dict[str, Any], summary: FrontDistillSummary, cpus: int,
               on_status: Callable[[str], None] | None, on_progress: ProgressCallback | None) -> None:
    for s in todo:
        if on_status:
            on_status(f"{s.name}: distilling here")
        result = _distill_student(_config_to_plain(configs[s.name]), str(s.folder), None, in_ray=False)
        _done(s, result, summary, on_status, on_progress)


def _done(s: Student, result: dict[str, Any], summary: FrontDistillSummary, on_status, on_progress) -> None:
    summary.reports[s.name] = result["report"]
    summary.nodes[s.name] = f"{result['node_id'][:8]} ({result['hostname']})"
    summary.gpu_ids[s.name] = result.get("gpu_ids")
    if on_status:
        score = result["report"].get("student_score")
        on_status(f"{s.name}: done on {summary.nodes[s.name]} in {result['task_s']:.0f} s"
                  + (f", {result['report'].get('metric')} {score:.4f}" if isinstance(score, (int, float)) else ""))
    emit(on_progress, "students", len(summary.reports), len(summary.students))


def _run_ray(ray: Any, todo: Sequence[Student], configs: dict[str, Any], base: Any, summary: FrontDistillSummary,
             fleet: Any, train_device: str, cpus: int, max_retries: int, on_status, on_progress) -> None:
    from hwnas.profiling.fleet import _is_system_failure, _unwrap

    gpus = 1 if train_device == "cuda" else 0
    options = {"num_cpus": cpus, "num_gpus": gpus, "resources": _measuring_resource(base, summary.students, fleet),
               "max_retries": max_retries, "retry_exceptions": False}
    if on_status:
        on_status(f"teacher: fine-tuning once (or reusing {base.cache_dir})")
    teacher_opts = {**options, "resources": {}}
    try:
        summary.teacher = ray.get(ray.remote(_prepare_teacher).options(**teacher_opts).remote(
            _config_to_plain(configs[todo[0].name])))
    except Exception as exc:  # noqa: BLE001 - a remote failure: hwnas errors as themselves
        raise _remote_error(ray, exc, "fine-tuning the teacher", _unwrap, _is_system_failure) from None
    if on_status:
        on_status(f"teacher ready: {summary.teacher['path']}")
    remote = ray.remote(_distill_student).options(**options)
    pending = {remote.remote(_config_to_plain(configs[s.name]), str(s.folder), cpus if not gpus else None): s
               for s in todo}
    failures: list[str] = []
    try:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            s = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001
                err = _remote_error(ray, exc, f"distilling {s.name}", _unwrap, _is_system_failure)
                if err.exit_code == 2:  # bad input: every other student would fail alike
                    raise err from None
                failures.append(str(err))
                if on_status:
                    on_status(f"{s.name}: failed ({err}); rerun to resume it")
                continue
            _done(s, result, summary, on_status, on_progress)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    if failures:
        _write_fleet_file(summary, configs)
        raise HwnasError(f"{len(failures)} student(s) failed: {failures[0]}; rerun the same command to resume them")


def _check_resources(ray: Any, cpus: int, gpus: int, measuring: dict[str, int]) -> None:
    """Refuse, with one line, a cluster where no live node could ever run a student task."""
    need = {"CPU": cpus, **({"GPU": gpus} if gpus else {}), **measuring}
    alive = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(res.get(k, 0) >= v for k, v in need.items()) for res in alive):
        return
    have = "; ".join(", ".join(f"{k}={v:g}" for k, v in sorted(r.items()) if not k.startswith(("node:", "memory",
                                                                                                "object_store")))
                     for r in alive) or "no live node"
    hint = " (train on the CPU with --train-device cpu, or add GPU nodes)" if gpus else ""
    raise ClusterError(f"no live node of the Ray cluster offers {', '.join(f'{k}={v}' for k, v in need.items())} for a "
                       f"student task{hint}; nodes offer: {have}")


def _remote_error(ray: Any, exc: BaseException, what: str, unwrap, is_system_failure) -> HwnasError:
    """The hwnas error a task raised (bad input keeps its exit code 2), else a runtime failure (exit 1)."""
    cause = unwrap(exc)
    if isinstance(cause, HwnasError):
        return cause
    if is_system_failure(ray, exc):
        return HwnasError(f"{what}: its worker or node died on every try ({type(exc).__name__})")
    return HwnasError(f"{what} failed on the cluster: {str(exc).strip().splitlines()[-1]}")
