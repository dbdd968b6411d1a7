"""Adaptive profiling: measure where the latency predictor is least certain.

``hwnas profile ... --until-accuracy 0.95`` profiles in rounds. It starts with
a small space-filling plan (corners plus a Latin hypercube), then, every
round, fits a committee of physics + XGBoost predictors on K cross-validation
folds of what has been measured, scores every unmeasured (architecture, shape)
of the space by how much the committee disagrees (the standard deviation of
its log predictions), shortlists the most disputed, picks ``round_size`` of
them spread out over the space (:func:`select_next`), and measures them
together in one interleaved chunk. It stops when the cross-validated share of
predictions within ±10% reaches the target, when ``samples`` measurements
(the budget) are in the file, or when the time budget runs out.

The idea follows nn-Meter's adaptive sampling (measure more where the
predictor errs), with disagreement standing in for error because the error
of an unmeasured architecture is unknown. Every round is appended to the
same crash-safe JSON Lines store as :func:`hwnas.profiling.runner.profile`
writes, so ``--resume`` continues a killed run: the measured records are read
back and the rounds go on from there.

This module uses :mod:`hwnas.predictors` (imported lazily), the one place
where profiling looks downstream: the loop needs a predictor to decide what
to measure next.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.errors import InvalidConfig, check_int
from hwnas.profiling.runner import ProfileConfig, Task, check_resume, measure_tasks, open_profile
from hwnas.profiling.store import ProfileStore, record_key, stored_key
from hwnas.space import DIMENSIONS, get_space

__all__ = ["AdaptiveRound", "AdaptiveSummary", "profile_until_accuracy", "committee_disagreement", "select_next"]

#: Fewest measurements on which a reached accuracy target may stop the run.
MIN_FOR_TARGET = 10

#: Hyper-parameters of the committee (fixed: tuning every round would cost more than it tells).
_COMMITTEE_PARAMS = {"n_estimators": 50, "max_depth": 3, "learning_rate": 0.1, "coverage": None}


@dataclass
class AdaptiveRound:
    """One round: how many measurements, the cross-validated accuracy, what was added."""

    round: int
    measured: int
    cv_within_10: float
    cv_within_5: float
    cv_mape: float
    added: list[str] = field(default_factory=list)
    max_disagreement: float = float("nan")


@dataclass
class AdaptiveSummary:
    out: str
    measured: int
    stopped: str  # "target reached", "budget", "time budget", "space exhausted"
    rounds: list[AdaptiveRound] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def cv_within_10(self) -> float:
        return self.rounds[-1].cv_within_10 if self.rounds else float("nan")


def _raw(records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[r[d] for d in DIMENSIONS] + [r["seq_len"], r["batch_size"]] for r in records], dtype=np.float64)
    y = np.array([r["latency_ms"] for r in records], dtype=np.float64)
    return x, y


def committee_disagreement(x: np.ndarray, y: np.ndarray, pool: np.ndarray, *, folds: int = 5,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit one predictor per cross-validation fold; return ``(oof_ms, disagreement)``.

    Args:
        x: ``n x 6`` measured inputs, ``y`` their ``n`` latencies (ms).
        pool: ``m x 6`` candidate inputs.

    Returns:
        ``oof_ms``: ``n`` out-of-fold predictions of the measured rows (ms);
        ``disagreement``: ``m`` standard deviations of the committee's log
        predictions on the pool.
    """
    from sklearn.model_selection import KFold

    from hwnas.predictors.estimators import PhysicsXGBRegressor

    n = len(y)
    k = max(2, min(folds, n))
    oof = np.empty(n)
    logs = []
    for train, test in KFold(k, shuffle=True, random_state=seed).split(x):
        est = PhysicsXGBRegressor(seed=seed, **_COMMITTEE_PARAMS).fit(x[train], y[train])
        oof[test] = est.predict(x[test])
        if len(pool):
            logs.append(np.log(est.predict(pool)))
    spread = np.std(np.vstack(logs), axis=0) if logs else np.empty(0)
    return oof, spread


def select_next(measured: np.ndarray, pool: np.ndarray, disagreement: np.ndarray, k: int, *,
                shortlist: int = 4) -> np.ndarray:
    """Indices into ``pool`` of the next ``k`` measurements.

    The ``shortlist * k`` candidates with the largest disagreement are kept;
    from them, ``k`` are taken greedily, each the farthest (in log-scaled
    inputs) from everything measured or already taken. Pure top-k would spend a
    round on near-duplicates of one disputed corner.

    Args:
        measured: ``n x d`` inputs already measured; ``pool``: ``m x d`` candidates;
        disagreement: ``m`` scores (higher: less certain).
    """
    if k <= 0 or len(pool) == 0:
        return np.empty(0, dtype=int)
    order = np.argsort(-disagreement, kind="stable")[: max(k, shortlist * k)]
    logs = np.log(np.vstack([measured, pool]))
    span = np.ptp(logs, axis=0)
    span[span == 0] = 1.0
    unit = (logs - logs.min(axis=0)) / span
    ref, cand = unit[: len(measured)], unit[len(measured):]
    dist = np.min(((cand[order, None, :] - ref[None, :, :]) ** 2).sum(axis=2), axis=1) if len(ref) else np.full(order.size, np.inf)
    taken: list[int] = []
    for _ in range(min(k, order.size)):
        j = int(np.argmax(dist))
        taken.append(int(order[j]))
        dist = np.minimum(dist, ((cand[order] - cand[order[j]]) ** 2).sum(axis=1))
        dist[j] = -np.inf
    return np.array(taken, dtype=int)


def profile_until_accuracy(
    config: ProfileConfig, out: str, *, target: float = 0.95, round_size: int = 8, initial: int | None = None,
    resume: bool = False, on_round: Callable[[AdaptiveRound], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None, on_status: Callable[[str], None] | None = None,
) -> AdaptiveSummary:
    """Profile ``config.space`` on ``config.device`` until the predictor is accurate enough.

    Args:
        config: device, space, shapes, threads, dtype, seed and timing as for
            :func:`~hwnas.profiling.runner.profile`; ``config.samples`` is the
            budget (the most measurements the file will hold) and
            ``config.time_budget_s`` a time limit.
        out: the JSON Lines file (refused if it exists, unless ``resume``).
        target: stop once the cross-validated share within ±10% reaches it (0..1].
        round_size: measurements added per round (measured together, interleaved).
        initial: size of the space-filling start (default ``max(5, 2 * round_size)``).

    Raises:
        InvalidConfig: a bad target, round size or explicit architecture list.
        ProfileStoreError: ``out`` exists without ``resume``, holds other settings, or
            another process is writing it.
    """
    if not 0 < target <= 1:
        raise InvalidConfig(f"--until-accuracy must be a share in (0, 1], e.g. 0.95; got {target}")
    check_int("--round-size", round_size)
    if config.archs_file:
        raise InvalidConfig("--until-accuracy chooses architectures itself; it cannot be combined with --archs")
    initial = max(5, 2 * round_size) if initial is None else initial
    if initial < 5:
        raise InvalidConfig(f"the initial plan needs at least 5 architectures to fit a predictor; got {initial}")
    store = ProfileStore(out)
    store.check_writable()
    with store.lock():  # one writer per profile
        return _until_accuracy_locked(config, out, store, target, round_size, initial, resume, on_round, on_record,
                                      on_status)


def _until_accuracy_locked(config, out, store, target, round_size, initial, resume, on_round, on_record, on_status):
    from hwnas.devices.registry import create_device
    from hwnas.predictors.metrics import evaluate
    from hwnas.profiling.runner import reference_task

    existing = open_profile(store, resume)
    space = get_space(config.space or "small")
    device = create_device(config.device, threads=config.threads, dtype=config.dtype, seed=config.seed,
                           **config.device_options)
    check_resume(existing, out, device, config.timing.clock)

    def key(task: Task) -> str:
        return record_key(task.arch, task.shape.batch_size, task.shape.seq_len, device.name, device.dtype, device.threads)

    records = list(existing)
    done = {stored_key(r) for r in records}
    shapes = config.shapes()
    reference = reference_task(config, space, [Task(space.smallest, shapes[0])])
    pool = [Task(a, s) for a in space.enumerate() for s in shapes if key(Task(a, s)) not in done]
    run_id = uuid.uuid4().hex[:12]
    summary = AdaptiveSummary(out=str(out), measured=len(records), stopped="budget")
    start = time.perf_counter()
    chunk_no = 0

    def measure(tasks: list[Task], round_no: int) -> list[str]:
        nonlocal chunk_no
        added = []
        for offset in range(0, len(tasks), config.interleave):
            chunk = tasks[offset: offset + config.interleave]
            new = measure_tasks(device, chunk, config.timing, seed=config.seed * 100003 + 7919 + chunk_no,
                                extra={"space": space.name, "run_id": run_id, "plan": "adaptive", "round": round_no},
                                on_status=on_status, reference=reference)
            chunk_no += 1
            store.append(new)
            records.extend(new)
            for r in new:
                if on_record:
                    on_record(r)
            added.extend(t.arch.key for t in chunk)
        taken = {key(t) for t in tasks}
        pool[:] = [t for t in pool if key(t) not in taken]
        return added

    try:
        round_no = 0
        if len(records) < initial:
            want = initial - len(records)
            plan = [Task(a, s) for a in space.sample(min(len(space), initial), plan="lhs", seed=config.seed) for s in shapes]
            first = [t for t in plan if key(t) not in done][: min(want, config.samples - len(records))]
            if first:
                if on_status:
                    on_status(f"round 0: a space-filling start of {len(first)} measurement(s)")
                measure(first, 0)
        while True:
            round_no += 1
            x, y = _raw(records)
            pool_x = np.array([[*t.arch.as_tuple(), t.shape.seq_len, t.shape.batch_size] for t in pool],
                              dtype=np.float64).reshape(-1, 6)
            if on_status:
                on_status(f"round {round_no}: fitting the committee on {len(y)} measurement(s)")
            oof, spread = committee_disagreement(x, y, pool_x, seed=config.seed)
            m = evaluate(y, oof)
            rnd = AdaptiveRound(round_no, len(y), m["within_10"], m["within_5"], m["mape"],
                                max_disagreement=float(spread.max()) if spread.size else float("nan"))
            summary.rounds.append(rnd)
            summary.measured = len(y)
            # Cross-validation on a handful of points says little: the target is
            # only trusted from MIN_FOR_TARGET measurements on.
            if m["within_10"] >= target and len(y) >= MIN_FOR_TARGET:
                summary.stopped = "target reached"
            elif len(y) >= config.samples:
                summary.stopped = "budget"
            elif not pool:
                summary.stopped = "space exhausted"
            elif config.time_budget_s is not None and time.perf_counter() - start >= config.time_budget_s:
                summary.stopped = "time budget"
            else:
                summary.stopped = ""
            if summary.stopped:
                if on_round:
                    on_round(rnd)
                break
            k = min(round_size, config.samples - len(y), len(pool))
            chosen = [pool[i] for i in select_next(x, pool_x, spread, k)]
            rnd.added = measure(chosen, round_no)
            if on_round:
                on_round(rnd)
    finally:
        summary.wall_s = time.perf_counter() - start
    return summary
