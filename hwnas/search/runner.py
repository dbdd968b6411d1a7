"""The search loop: ask a strategy, evaluate, tell, record; and the output folder.

:func:`run_search` drives any registered strategy on a
:class:`~hwnas.search.problem.SearchProblem` with any evaluation function and
writes, in its output folder:

* ``config.json``: what produced the results (written first, updated at the end);
* ``evaluated.csv``: one row per evaluated architecture, appended and flushed
  after every batch, so a killed search loses at most the batch in progress;
* ``front.json``: the accuracy/latency Pareto front of the feasible evaluated
  architectures, with the reference point and hypervolume;
* ``winner.json``: the best feasible architecture, with its score, predicted
  latency and upper bound (ms) and what it was searched for (with a tie rule,
  :mod:`hwnas.search.ties`, the most parameters among the candidates the
  estimate cannot separate from the best);
* ``front.png``: accuracy estimate against predicted latency, the front and the budget;
* ``hypervolume.png``: hypervolume and best feasible score against evaluations.

An existing non-empty folder is never overwritten: pass ``resume=True`` to
continue it (every evaluation already in ``evaluated.csv`` is told to the
strategy, then the search goes on until ``evaluations`` is reached).

:func:`search` is the one-call entry point on top: a predictor bundle, an
accuracy estimator and a budget in, a :class:`SearchResult` out.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from hwnas._files import atomic_write_text
from hwnas.errors import InvalidConfig, InvalidData, check_int
from hwnas.outputs import MARKER, check_output_folder, one_writer, write_marker
from hwnas.search.base import Strategy, create_strategy
from hwnas.search.pareto import hypervolume_2d, pareto_mask
from hwnas.search.problem import LatencyModel, SearchProblem, max_memory_constraint, max_params_constraint
from hwnas.search.ties import TieRule, parse_tie_margin
from hwnas.space import DIMENSIONS, Architecture, SearchSpace

__all__ = ["Candidate", "SearchResult", "Progress", "run_search", "search", "write_json"]

_CSV_COLUMNS = [
    "eval", *DIMENSIONS, "score", "latency_ms", "latency_upper_ms", "params", "feasible", "reward",
    "best_feasible_score", "hypervolume",
]

# config.json fields that must agree for a search to be resumed.
_RESUME_KEYS = ("space", "budget_ms", "seq_len", "batch_size", "objective", "reward_weight", "constraints",
                "strategy", "strategy_options", "predictor", "supernet", "estimator", "device")


@dataclass(frozen=True)
class Candidate:
    """One evaluated architecture. Latencies in milliseconds; ``score`` higher is better."""

    arch: Architecture
    score: float
    latency_ms: float
    latency_upper_ms: float
    params: int
    feasible: bool
    reward: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)  # the architecture as {layers, hidden, heads, ffn}
        if self.reward is None:
            del out["reward"]
        return out


@dataclass(frozen=True)
class Progress:
    """What the loop reports after every batch (for progress bars)."""

    evaluations: int
    total: int
    best_feasible_score: float
    hypervolume: float
    last: Architecture | None


@dataclass
class SearchResult:
    """What a search found.

    Attributes:
        winner: the feasible evaluated architecture with the best score (best
            reward with ``objective="reward"``; equal values go to the lower latency), or
            None when nothing feasible was evaluated. With a tie rule: the one with
            the most parameters among those within its margin of the best.
        front: the accuracy/latency Pareto front of the feasible evaluated
            architectures, by increasing latency.
        evaluated: a ``pandas.DataFrame``, one row per evaluation in order (the
            columns of ``evaluated.csv``, plus ``on_front``).
        hypervolume: of ``front`` against ``reference`` (score units x ms).
        reference: (score, latency_ms) reference point; the latency is the budget.
        stopped: ``"budget"`` (evaluations used up) or ``"exhausted"`` (every
            feasible architecture evaluated).
    """

    winner: Candidate | None
    front: list[Candidate]
    evaluated: Any
    hypervolume: float
    reference: tuple[float, float]
    problem: SearchProblem
    strategy: Strategy
    config: dict[str, Any]
    stopped: str
    out: Path | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- helpers
def _as_scorer(evaluate: Any) -> Callable[[list[Architecture]], np.ndarray]:
    if hasattr(evaluate, "score") and callable(evaluate.score):
        return evaluate.score
    if callable(evaluate):
        return evaluate
    raise InvalidConfig(f"evaluate must be a callable or an estimator with score(); got {type(evaluate).__name__}")


def _estimator_name(evaluate: Any) -> str:
    name = getattr(evaluate, "label", None) or getattr(evaluate, "name", None)
    return str(name) if name else getattr(evaluate, "__name__", type(evaluate).__name__)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (numpy numbers and paths allowed), atomically and durably."""
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _prepare_out(out: Path, resume: bool) -> bool:
    """Create ``out``; refuse a non-empty one unless resuming. Returns True when there is something to resume."""
    if out.exists() and not out.is_dir():
        raise InvalidConfig(f"--out {out} is a file; give a folder for the search results")
    check_output_folder(out, kind="search")  # never write into a folder hwnas did not make
    existing = out.is_dir() and any(p.name != MARKER for p in out.iterdir())
    if existing and not resume:
        raise InvalidConfig(
            f"{out} already exists and is not empty; pass --resume to continue that search, or choose another --out"
        )
    if resume and existing and not (out / "config.json").is_file():
        raise InvalidConfig(f"cannot resume {out}: it has no config.json (not a search folder)")
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, "search")
    return existing


def _read_evaluated(path: Path, problem: SearchProblem) -> list[tuple[Architecture, float]]:
    if not path.is_file():
        return []
    rows: list[tuple[Architecture, float]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.DictReader(fh), 2):
            try:
                arch = problem.space.validate(Architecture.from_dict({d: int(row[d]) for d in DIMENSIONS}))
                score = float(row["score"])
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidData(f"{path}, line {lineno}: cannot read an evaluation ({exc}); the file is damaged") from None
            rows.append((arch, score))
    return rows


class _Tracker:
    """Running best feasible score and hypervolume (reference score: the lowest feasible score so far)."""

    def __init__(self, problem: SearchProblem, reference_score: float | None) -> None:
        self.problem = problem
        self.fixed_reference = reference_score
        self.indices: list[int] = []
        self.scores: list[float] = []

    def add(self, indices: Sequence[int], scores: Sequence[float]) -> None:
        self.indices.extend(int(i) for i in indices)
        self.scores.extend(float(s) for s in scores)

    def _feasible(self) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(self.indices, dtype=np.int64)
        s = np.asarray(self.scores, dtype=np.float64)
        keep = self.problem.feasible[idx] if len(idx) else np.zeros(0, dtype=bool)
        return idx[keep], s[keep]

    @property
    def best_feasible_score(self) -> float:
        _, s = self._feasible()
        return float(s.max()) if len(s) else float("nan")

    @property
    def reference_score(self) -> float:
        if self.fixed_reference is not None:
            return float(self.fixed_reference)
        _, s = self._feasible()
        return float(s.min()) if len(s) else float("nan")

    @property
    def hypervolume(self) -> float:
        idx, s = self._feasible()
        if not len(s):
            return 0.0
        return hypervolume_2d(s, self.problem.latency_ms[idx], ref_score=self.reference_score,
                              ref_latency_ms=self.problem.budget_ms)


def _candidate(problem: SearchProblem, i: int, score: float) -> Candidate:
    reward = float(problem.reward(np.array([i]), np.array([score]))[0]) if problem.objective == "reward" else None
    return Candidate(
        arch=problem.candidates[i], score=float(score), latency_ms=float(problem.latency_ms[i]),
        latency_upper_ms=float(problem.latency_upper_ms[i]), params=int(problem.params[i]),
        feasible=bool(problem.feasible[i]), reward=reward,
    )


# -------------------------------------------------------------- the loop
def run_search(
    problem: SearchProblem, evaluate: Any, *, strategy: str | Strategy = "bo", evaluations: int = 64, batch: int = 1,
    seed: int = 0, strategy_options: Mapping[str, Any] | None = None, out: str | Path | None = None,
    resume: bool = False, describe: Mapping[str, Any] | None = None, reference_score: float | None = None,
    on_start: Callable[[int, int], None] | None = None, on_progress: Callable[[Progress], None] | None = None,
    ties: TieRule | str | float | None = None,
) -> SearchResult:
    """Search ``problem`` with ``evaluations`` accuracy evaluations.

    Args:
        problem: the space, latencies, budget and constraints.
        evaluate: an estimator with ``score(archs) -> np.ndarray`` or a callable
            with the same signature (one score per architecture, higher is better).
        strategy: a registered strategy name or a :class:`Strategy` instance
            (then ``seed`` and ``strategy_options`` are ignored).
        evaluations: the number of accuracy evaluations (the expensive part).
        batch: architectures asked for and evaluated together.
        seed: seeds the strategy.
        strategy_options: keyword options of the strategy's constructor.
        out: output folder (see the module doc); None writes nothing.
        resume: continue the search already in ``out``.
        describe: extra JSON-able facts for ``config.json`` and ``winner.json``
            (``predictor``, ``supernet``, ``device``, ...).
        reference_score: the hypervolume's reference score; default: the lowest
            feasible score evaluated (the reference latency is always the budget).
        on_start: called once with ``(evaluations to do, evaluations already done)``.
        on_progress: called after every batch with a :class:`Progress`.
        ties: how the winner is picked among candidates the estimate cannot separate
            (:mod:`hwnas.search.ties`): ``None`` (the highest value wins), a score
            difference such as ``0.005``, or ``"2se"`` (two paired standard errors; needs
            an estimator with :meth:`row_scores`).

    With ``out``, one process at a time writes it: its lock, ``<out>.lock`` beside
    it, refuses a second search on the same folder (:class:`InvalidConfig` naming the holder).
    """
    for label, value in (("evaluations", evaluations), ("batch", batch)):
        check_int(label, value)
    ties = parse_tie_margin(ties, "ties")
    if ties is not None:
        ties.check_estimator(evaluate)
    with one_writer(out):
        return _run_search(problem, evaluate, strategy=strategy, evaluations=evaluations, batch=batch, seed=seed,
                           strategy_options=strategy_options, out=out, resume=resume, describe=describe,
                           reference_score=reference_score, on_start=on_start, on_progress=on_progress, ties=ties)


def _run_search(
    problem: SearchProblem, evaluate: Any, *, strategy: str | Strategy, evaluations: int, batch: int, seed: int,
    strategy_options: Mapping[str, Any] | None, out: str | Path | None, resume: bool,
    describe: Mapping[str, Any] | None, reference_score: float | None,
    on_start: Callable[[int, int], None] | None, on_progress: Callable[[Progress], None] | None,
    ties: TieRule | None = None,
) -> SearchResult:
    scorer = _as_scorer(evaluate)
    if isinstance(strategy, Strategy):
        strat = strategy
    else:
        strat = create_strategy(strategy, seed=seed, **dict(strategy_options or {}))
    strat.setup(problem)
    describe = dict(describe or {})
    config: dict[str, Any] = {
        **problem.describe(), "strategy": strat.name, "strategy_options": strat.options(),
        "evaluations": int(evaluations), "batch": int(batch),
        "estimator": describe.pop("estimator", _estimator_name(evaluate)), "predictor": describe.pop("predictor", None),
        "supernet": describe.pop("supernet", None),
        "device": describe.pop("device", getattr(problem.latency_model, "device", None)), **describe,
    }

    out_path = Path(out) if out is not None else None
    done_before: list[tuple[Architecture, float]] = []
    if out_path is not None:
        existing = _prepare_out(out_path, resume)
        if existing:
            old = json.loads((out_path / "config.json").read_text(encoding="utf-8"))
            differ = [k for k in _RESUME_KEYS if json.dumps(old.get(k), default=_json_default, sort_keys=True)
                      != json.dumps(config.get(k), default=_json_default, sort_keys=True)]
            if differ:
                detail = "; ".join(f"{k}: was {old.get(k)!r}, now {config.get(k)!r}" for k in differ)
                raise InvalidConfig(f"cannot resume {out_path} with different settings ({detail})")
            done_before = _read_evaluated(out_path / "evaluated.csv", problem)
        config.update(status="running", started=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        write_json(out_path / "config.json", config)

    tracker = _Tracker(problem, reference_score)
    if done_before:
        archs = [a for a, _ in done_before]
        strat.tell(archs, [s for _, s in done_before])
        tracker.add([problem.index(a) for a in archs], [s for _, s in done_before])

    csv_path = out_path / "evaluated.csv" if out_path is not None else None
    rows: list[dict[str, Any]] = []
    if csv_path is not None and not csv_path.is_file():
        # evaluated.csv is an append-only log with its own crash-safety: rows are appended and fsynced after
        # every batch (a kill loses at most the batch in progress), and write_outputs replaces it atomically
        # at the end. Only its header is written here, atomically like every other file.
        atomic_write_text(csv_path, ",".join(_CSV_COLUMNS) + "\r\n")
    # Rebuild the in-memory rows of a resumed search (running columns recomputed).
    if done_before:
        replay = _Tracker(problem, reference_score)
        for n, (a, s) in enumerate(done_before, 1):
            i = problem.index(a)
            replay.add([i], [s])
            rows.append(_row(problem, n, i, s, replay))

    if on_start:
        on_start(max(0, evaluations - len(done_before)), len(done_before))
    start = time.perf_counter()
    stopped = "budget"
    def score(archs: list[Architecture]) -> np.ndarray:
        scores = np.asarray(scorer(list(archs)), dtype=np.float64).reshape(-1)
        if scores.shape != (len(archs),):
            raise InvalidData(f"the estimator returned {scores.shape[0]} scores for {len(archs)} architectures")
        return scores

    def record(indices: list[int], scores: np.ndarray) -> None:
        """Add evaluated architectures to the tracker, the rows and evaluated.csv (appended and fsynced)."""
        new_rows = []
        for i, s in zip(indices, scores.tolist(), strict=True):
            tracker.add([i], [s])
            new_rows.append(_row(problem, len(tracker.indices), i, s, tracker))
        rows.extend(new_rows)
        if csv_path is not None:
            with csv_path.open("a", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=_CSV_COLUMNS)
                writer.writerows(new_rows)
                fh.flush()
                os.fsync(fh.fileno())

    while len(tracker.indices) < evaluations:
        archs = strat.ask(min(batch, evaluations - len(tracker.indices)))
        if not archs:
            stopped = "exhausted"
            break
        scores = score(archs)
        strat.tell(archs, scores)
        record([problem.index(a) for a in archs], scores)
        if on_progress:
            on_progress(Progress(len(tracker.indices), evaluations, tracker.best_feasible_score,
                                 tracker.hypervolume, archs[-1]))
    if len(tracker.indices) < evaluations and strat.exhausted:
        stopped = "exhausted"
    within = getattr(evaluate, "comparable_within", None)
    band = top_band(problem, within)
    if band is not None:
        # scores that compare only inside a latency band: the winner comes from the band at the top of the budget,
        # every member of which is scored (beyond --evaluations if need be; such estimators are cheap)
        config["winner_band"] = {"within": float(within),
                                 "min_latency_ms": float(problem.latency_ms[band].min()) if len(band) else None,
                                 "architectures": int(len(band))}
        done = set(tracker.indices)
        missing = [int(i) for i in band if int(i) not in done]
        if missing:
            record(missing, score([problem.candidates[i] for i in missing]))
    wall_s = time.perf_counter() - start

    row_scores = evaluate.row_scores if ties is not None and ties.needs_rows else None
    result = _build_result(problem, strat, tracker, rows, config, stopped, out_path, wall_s, band,
                           ties=ties, row_scores=row_scores)
    if out_path is not None:
        config.update(status="done", finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      evaluations_done=len(rows), stopped=stopped, wall_s=wall_s,
                      reference_point={"score": result.reference[0], "latency_ms": result.reference[1]})
        write_outputs(result)
        write_json(out_path / "config.json", config)
    return result


def _row(problem: SearchProblem, n: int, i: int, score: float, tracker: _Tracker) -> dict[str, Any]:
    c = _candidate(problem, i, score).to_dict()
    return {"eval": n, **c.pop("arch"), **c, "reward": c.get("reward", ""),
            "best_feasible_score": tracker.best_feasible_score, "hypervolume": tracker.hypervolume}


def top_band(problem: SearchProblem, within: float | None) -> np.ndarray | None:
    """The feasible architectures whose predicted latency is within ``within`` of the slowest feasible one
    (``l * (1 + within) >= max``): the band at the top of the budget. ``None`` when ``within`` is ``None``."""
    if within is None:
        return None
    feasible = np.flatnonzero(problem.feasible)
    if not len(feasible):
        return feasible
    lat = problem.latency_ms[feasible]
    return feasible[lat * (1.0 + float(within)) >= lat.max()]


def _build_result(problem, strat, tracker, rows, config, stopped, out_path, wall_s,
                  band: np.ndarray | None = None, *, ties: TieRule | None = None,
                  row_scores: Callable[[list[Architecture]], np.ndarray] | None = None) -> SearchResult:
    import pandas as pd

    idx = np.asarray(tracker.indices, dtype=np.int64)
    scores = np.asarray(tracker.scores, dtype=np.float64)
    feasible = problem.feasible[idx] if len(idx) else np.zeros(0, dtype=bool)
    on_front = np.zeros(len(idx), dtype=bool)
    if feasible.any():
        f = np.flatnonzero(feasible)
        on_front[f[pareto_mask(scores[f], problem.latency_ms[idx[f]])]] = True
    frame = pd.DataFrame(rows, columns=_CSV_COLUMNS)
    frame["on_front"] = on_front
    front = sorted((_candidate(problem, int(i), float(s)) for i, s in zip(idx[on_front], scores[on_front], strict=True)),
                   key=lambda c: (c.latency_ms, -c.score))
    winner = None
    if feasible.any():
        f = np.flatnonzero(feasible)
        if band is not None and len(band):
            f = f[np.isin(idx[f], band)]
        value = problem.rank_value(idx[f], scores[f])
        best = f[np.lexsort((problem.latency_ms[idx[f]], -value))[0]]
        if ties is not None:
            best = _tie_winner(problem, ties, idx, f, value, best, config, row_scores)
        winner = _candidate(problem, int(idx[best]), float(scores[best]))
    reference = (tracker.reference_score, problem.budget_ms)
    return SearchResult(
        winner=winner, front=front, evaluated=frame, hypervolume=tracker.hypervolume, reference=reference,
        problem=problem, strategy=strat, config=config, stopped=stopped, out=out_path, wall_s=wall_s,
    )


def _tie_winner(problem: SearchProblem, ties: TieRule, idx: np.ndarray, f: np.ndarray, value: np.ndarray,
                best: int, config: dict[str, Any], row_scores) -> int:
    """The winner under ``ties`` among the positions ``f`` (values ``value``); records the tied set in ``config``."""
    rows = None
    if row_scores is not None:
        def rows(positions: list[int]) -> np.ndarray:
            return row_scores([problem.candidates[int(idx[f[p]])] for p in positions])
    top, tied = ties.tied(value, rows, best=int(np.flatnonzero(f == best)[0]))
    members = np.flatnonzero(tied)
    arch_idx = idx[f[members]]
    order = np.lexsort((problem.latency_ms[arch_idx], -value[members], -problem.params[arch_idx].astype(np.float64)))
    chosen = int(f[members[order[0]]])
    config["ties"] = {**ties.describe(), "best": problem.candidates[int(idx[f[top]])].key,
                      "best_value": float(value[top]),
                      "tied": [problem.candidates[int(i)].key for i in arch_idx[order]],
                      "winner": problem.candidates[int(idx[chosen])].key}
    return chosen


# ------------------------------------------------------------- outputs
def winner_record(result: SearchResult) -> dict[str, Any] | None:
    """The ``winner.json`` document (the agreed cross-team format), or None without a winner."""
    w = result.winner
    if w is None:
        return None
    cfg = result.config
    record = {
        **w.to_dict(), "budget_ms": result.problem.budget_ms, "space": result.problem.space.name,
        "device": cfg.get("device"), "seq_len": result.problem.seq_len, "batch_size": result.problem.batch_size,
        "supernet": cfg.get("supernet"), "predictor": cfg.get("predictor"), "estimator": cfg.get("estimator"),
        "objective": result.problem.objective,
    }
    if "ties" in cfg:
        record["ties"] = cfg["ties"]
    del record["feasible"]  # a winner is feasible
    return record


def write_outputs(result: SearchResult) -> None:
    """Write ``front.json``, ``winner.json``, ``front.png`` and the final ``evaluated.csv`` into ``result.out``."""
    out = result.out
    if out is None:
        raise InvalidConfig("this result has no output folder")
    problem = result.problem
    write_json(out / "front.json", {
        "space": problem.space.name, "objectives": {"score": "maximise", "latency_ms": "minimise (predicted)"},
        "budget_ms": problem.budget_ms,
        "reference_point": {"score": result.reference[0], "latency_ms": result.reference[1]},
        "hypervolume": result.hypervolume, "evaluations": int(len(result.evaluated)),
        "front": [c.to_dict() for c in result.front],
    })
    record = winner_record(result)
    if record is not None:
        write_json(out / "winner.json", record)
    atomic_write_text(out / "evaluated.csv", result.evaluated.to_csv(index=False))
    plot_front(result, out / "front.png")
    from hwnas.plots.search import HYPERVOLUME_PNG, hypervolume_figure

    hypervolume_figure(result.evaluated, result.config, path=out / HYPERVOLUME_PNG)


def plot_front(result: SearchResult, path: Path) -> None:
    """Accuracy estimate against predicted latency: evaluated points, the front, the budget and the winner."""
    from hwnas.plots.style import COLORS, figure, finish

    problem, df = result.problem, result.evaluated
    with figure(width=7, height=4.5, dpi=120) as (fig, ax):  # the hwnas style: Agg backend, Okabe-Ito colours
        if len(df):
            feas = df["feasible"].astype(bool).to_numpy()
            if (~feas).any():
                ax.scatter(df["latency_ms"][~feas], df["score"][~feas], s=14, c=COLORS["grey"], marker="x",
                           label="over a constraint")
            ax.scatter(df["latency_ms"][feas], df["score"][feas], s=14, c=COLORS["blue"], alpha=0.7, label="feasible")
        if result.front:
            lat = [c.latency_ms for c in result.front]
            sc = [c.score for c in result.front]
            ax.step(lat, sc, where="post", c=COLORS["orange"], lw=1.5, label="Pareto front")
            ax.scatter(lat, sc, s=24, c=COLORS["orange"], zorder=3)
        ax.axvline(problem.budget_ms, c=COLORS["vermillion"], ls="--", lw=1, label=f"budget {problem.budget_ms:g} ms")
        if result.winner is not None:
            w = result.winner
            ax.errorbar([w.latency_ms], [w.score], xerr=[[0], [w.latency_upper_ms - w.latency_ms]], fmt="*",
                        ms=14, c=COLORS["green"], label=f"winner ({w.arch}), upper bound", zorder=4)
        ax.set_xlabel(f"predicted latency (ms), seq {problem.seq_len}, batch {problem.batch_size}")
        ax.set_ylabel(f"accuracy estimate (score units, {result.config.get('estimator')}), higher is better", fontsize=8)
        device = result.config.get("device")
        ax.set_title(f"Search front: {result.config.get('strategy')} on space {problem.space.name}, {len(df)} evaluations"
                     + (f"\n{device}, seq {problem.seq_len}, batch {problem.batch_size}" if device else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        finish(fig, path)


# --------------------------------------------------------- entry point
def search(
    *, predictor: LatencyModel | str | Path, estimator: Any, max_latency_ms: float,
    space: SearchSpace | str | None = None, seq_len: int = 128, batch_size: int = 1, strategy: str | Strategy = "bo",
    evaluations: int = 64, seed: int = 0, objective: str = "pareto", reward_weight: float = 0.1,
    max_params: float | None = None, max_memory_mb: float | None = None,
    strategy_options: Mapping[str, Any] | None = None, batch: int = 1, out: str | Path | None = None,
    resume: bool = False, describe: Mapping[str, Any] | None = None, on_start: Callable[[int, int], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None, on_status: Callable[[str], None] | None = None,
    ties: TieRule | str | float | None = None,
) -> SearchResult:
    """Find the most accurate architectures predicted to run within ``max_latency_ms``.

    Args:
        predictor: a predictor bundle path (``.hwnas``) or a loaded predictor
            (anything with ``predict``/``predict_upper`` in ms).
        estimator: accuracy estimator with ``score(archs)`` (higher is better),
            e.g. ``hwnas.supernet.estimate.SupernetEstimator``, or such a callable.
        max_latency_ms: the budget in milliseconds, checked against the
            predictor's calibrated upper bound.
        space: a space, its name or file; default: the predictor's space, else the
            estimator's supernet's space.
        seq_len, batch_size: input shape the latency is predicted for.
        strategy: ``random``, ``evolution``, ``bo`` (or any registered name), or a :class:`Strategy`.
        evaluations: accuracy evaluations to spend.
        objective: ``pareto`` (score and latency), ``score`` or ``reward``.
        reward_weight: for ``reward``: score units lost for a latency equal to the budget.
        max_params, max_memory_mb: optional extra constraints (parameters;
            fp32 weight memory in MB).
        strategy_options, batch, out, resume, describe, on_start, on_progress: as :func:`run_search`.
        on_status: one line before the search starts: how much of the space is predicted within the budget.
        ties: the winner rule among candidates the estimate cannot separate (:func:`run_search`).
    """
    predictor_path = None
    if isinstance(predictor, (str, Path)):
        from hwnas.predictors import load_predictor

        predictor_path = str(predictor)
        predictor = load_predictor(predictor)
    if space is None:
        space = getattr(predictor, "space", None)
    if space is None:
        supernet = getattr(estimator, "supernet", None)
        space = getattr(getattr(supernet, "space", None), "name", None) or getattr(getattr(estimator, "space", None), "name", None)
    if space is None:
        raise InvalidConfig("give a space: neither the predictor nor the estimator names one")
    constraints = []
    if max_params is not None:
        constraints.append(max_params_constraint(max_params))
    if max_memory_mb is not None:
        constraints.append(max_memory_constraint(max_memory_mb))
    problem = SearchProblem(space=space, latency=predictor, budget_ms=max_latency_ms, seq_len=seq_len,
                            batch_size=batch_size, constraints=constraints, objective=objective,
                            reward_weight=reward_weight)
    if on_status is not None:
        line = (f"space {problem.space.name}: {int(problem.feasible.sum())} of {len(problem)} architectures predicted "
                f"within {max_latency_ms:g} ms")
        if hasattr(predictor, "guaranteed_coverage"):
            line += (f" (upper bound: nominal {predictor.coverage:.0%} coverage, "
                     f"guaranteed about {predictor.guaranteed_coverage:.0%})")
        on_status(line)
    info = {"predictor": predictor_path, "device": getattr(predictor, "device", None)}
    info.update(describe or {})
    return run_search(problem, estimator, strategy=strategy, evaluations=evaluations, batch=batch, seed=seed,
                      strategy_options=strategy_options, out=out, resume=resume, describe=info,
                      on_start=on_start, on_progress=on_progress, ties=ties)
