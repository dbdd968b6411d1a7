"""``hwnas run``: the whole pipeline on embedded defaults, every stage reusable.

Stages and what each writes under the work folder (default ``hwnas-runs/<name>``):

=========  ==========================  ==========================================
stage      output                      reused when
=========  ==========================  ==========================================
profile    ``profile.jsonl``           always resumed (measured tasks are skipped)
predictor  ``predictor.hwnas``         the file exists (or ``--predictor`` given)
supernet   ``supernet/``               trained to the requested steps (or ``--supernet``)
search     ``search/winner.json``      the search has used its evaluations (resumed otherwise)
distill    ``student/`` (HF + ONNX)    ``student/report.json`` exists with the same settings
verify     ``summary.json``            recomputed from the stages' outputs
=========  ==========================  ==========================================

The space is chosen from the budget when not given: ``tiny`` (about 1-6 ms on
one CPU thread) for budgets up to 8 ms, ``small`` above. The duration printed
at the start is a rough estimate from per-unit costs (seconds per profiled
architecture, per training step, ...) for an otherwise idle 2-core machine;
they are round figures, not a calibrated model, and a busy machine is slower.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import InvalidConfig

__all__ = ["RunConfig", "run_pipeline", "estimate_seconds", "choose_space", "STAGES", "quick_config"]

STAGES = ("profile", "predictor", "supernet", "search", "distill", "verify")

#: Rough seconds per unit of work on an idle 2-core machine (round figures; see estimate_seconds).
_COST_S = {
    "profile_sample": 2.5,        # one architecture, default timing capped at max_time_s + build
    "predictor_fit": 20.0,
    "supernet_step": {"tiny": 1.3, "small": 2.5},
    "search_eval": 0.6,
    "search_step_bo": 0.6,          # BO's own cost per proposal (GP fit + acquisition) at ~40 evaluations
    "teacher_step": 0.45,
    "distill_step": 0.35,
    "export": 25.0,
    "fixed": 30.0,                 # imports, tokenisation, evaluation passes
}


def choose_space(budget_ms: float) -> str:
    """``tiny`` for budgets up to 8 ms (its students take about 1-6 ms on one thread), else ``small``."""
    return "tiny" if budget_ms <= 8.0 else "small"


@dataclass(frozen=True)
class RunConfig:
    """Settings of ``hwnas run``.

    Args:
        max_latency_ms: the latency budget (seq ``seq_len``, batch 1), checked on the predictor's upper bound.
        device: the device to profile and verify on.
        name: the run's folder name under ``work_dir`` (default ``<device>-<budget>ms``).
        space: search space; ``None`` chooses from the budget (:func:`choose_space`).
        predictor, supernet: reuse these instead of profiling/fitting or training.
        task, eval: task data (default: the embedded SST-2 sample).
        profile_samples: architectures to profile; ``profile_max_time_s``: timing cap per architecture.
        supernet_steps, supernet_batch, supernet_rows: supernet training.
        search_evaluations, strategy: the search.
        teacher_steps, distill_steps, distill_lr, batch_size, max_len, limit: distillation
            (3e-4: at 1e-4, 200 steps left students at chance in the SST-2 benchmark).
        threads: CPU threads for profiling and measurement.
        quick_timing: looser timing protocol (tests and smoke runs).
        strict: refuse a host-bound predictor profiled on another host (default: warn).
    """

    max_latency_ms: float
    device: str = "cpu"
    name: str | None = None
    work_dir: str = "hwnas-runs"
    space: str | None = None
    predictor: str | None = None
    supernet: str | None = None
    task: str | None = None
    eval: str | None = None
    teacher: str = "default"
    seq_len: int = 128
    threads: int = 1
    profile_samples: int = 40
    profile_max_time_s: float = 1.0
    supernet_steps: int = 150
    supernet_batch: int = 16
    supernet_seq_len: int = 64
    supernet_rows: int | None = 2000
    search_evaluations: int = 40
    # BO reaches 99% of the hypervolume in 0.25-0.48x evolution's evaluations (docs/search.md) and
    # costs about 0.5-0.7 s per proposal at 40 evaluations here, on the order of one supernet evaluation.
    strategy: str = "bo"
    teacher_steps: int = 200
    distill_steps: int = 200
    distill_lr: float = 3e-4
    batch_size: int = 32
    max_len: int = 64
    limit: int | None = None
    eval_limit: int | None = 500
    quick_timing: bool = False
    seed: int = 0
    strict: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.max_latency_ms, (int, float)) and self.max_latency_ms > 0):
            raise InvalidConfig(f"max_latency_ms must be a positive number of milliseconds; got {self.max_latency_ms!r}")
        for name in ("profile_samples", "supernet_steps", "supernet_batch", "search_evaluations", "teacher_steps",
                     "distill_steps", "batch_size", "max_len", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidConfig(f"{name} must be an integer >= 1; got {v!r}")
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..")):
            raise InvalidConfig(f"name must be a plain folder name; got {self.name!r}")

    @property
    def run_name(self) -> str:
        return self.name or f"{self.device}-{self.max_latency_ms:g}ms"

    @property
    def folder(self) -> Path:
        return Path(self.work_dir) / self.run_name

    @property
    def space_name(self) -> str:
        return self.space or choose_space(self.max_latency_ms)


def quick_config(max_latency_ms: float, **overrides: Any) -> RunConfig:
    """A tiny configuration that runs every stage in about a minute (tests, smoke runs)."""
    values = dict(profile_samples=10, supernet_steps=4, supernet_batch=4, supernet_seq_len=32, supernet_rows=64,
                  search_evaluations=6, strategy="random", teacher_steps=4, distill_steps=4, batch_size=8, max_len=32,
                  limit=64, eval_limit=32, quick_timing=True, space="tiny")
    values.update(overrides)
    return RunConfig(max_latency_ms=max_latency_ms, **values)


def _done(config: RunConfig) -> dict[str, bool]:
    """Which stages already have reusable outputs."""
    f = config.folder
    supernet_done = False
    meta = f / "supernet" / "supernet.json"
    if config.supernet:
        supernet_done = True
    elif meta.is_file():
        try:
            supernet_done = json.loads(meta.read_text()).get("steps_done", 0) >= config.supernet_steps
        except (OSError, ValueError):
            supernet_done = False
    search_done = (f / "search" / "winner.json").is_file()
    return {
        "profile": bool(config.predictor) or (f / "predictor.hwnas").is_file(),
        "predictor": bool(config.predictor) or (f / "predictor.hwnas").is_file(),
        "supernet": supernet_done,
        "search": search_done,
        "distill": (f / "student" / "report.json").is_file(),
    }


def estimate_seconds(config: RunConfig) -> dict[str, float]:
    """Rough seconds per stage still to run (0 for stages whose output is reused)."""
    done = _done(config)
    space = config.space_name
    scale = 0.25 if config.quick_timing else 1.0
    est = {
        "profile": 0.0 if done["profile"] else config.profile_samples * (_COST_S["profile_sample"] * scale + 0.3),
        "predictor": 0.0 if done["predictor"] else _COST_S["predictor_fit"],
        "supernet": 0.0 if done["supernet"] else config.supernet_steps * _COST_S["supernet_step"].get(space, 2.5)
        * config.supernet_batch / 16,
        "search": 0.0 if done["search"] else config.search_evaluations * (
            _COST_S["search_eval"] + (_COST_S["search_step_bo"] if config.strategy == "bo" else 0.0)),
        "distill": 0.0 if done["distill"] else (config.teacher_steps * _COST_S["teacher_step"]
                                                + config.distill_steps * _COST_S["distill_step"]) * config.batch_size / 32
        + _COST_S["export"],
        "verify": 5.0,
    }
    est["fixed"] = _COST_S["fixed"]
    return est


@dataclass
class StageResult:
    name: str
    status: str  # "ran", "reused", "resumed"
    seconds: float
    output: str
    detail: str = ""


@dataclass
class RunSummary:
    config: dict[str, Any]
    folder: str
    stages: list[StageResult] = field(default_factory=list)
    winner: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    budget_ms: float = 0.0
    within_budget: bool | None = None
    #: where and how the student was measured, the drift and both verdicts (see :func:`_verification`)
    verification: dict[str, Any] | None = None
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d


class _Callbacks:
    """What the pipeline tells its display; every method is optional to implement."""

    def stage_start(self, name: str, total: int | None, note: str) -> None: ...

    def stage_advance(self, name: str, completed: int, text: str = "") -> None: ...

    def stage_end(self, name: str, status: str, note: str) -> None: ...

    def status(self, text: str) -> None: ...


def run_pipeline(config: RunConfig, callbacks: _Callbacks | None = None) -> RunSummary:
    """Run (or reuse) every stage and write ``summary.json`` in the run folder."""
    cb = callbacks or _Callbacks()
    t0 = time.perf_counter()
    folder = config.folder
    from hwnas.outputs import claim_output_folder

    claim_output_folder(folder, kind="run", option="--work-dir/--name")  # never a folder hwnas did not make
    space = config.space_name
    cfg_dict = {**asdict(config), "space": space, "folder": str(folder)}
    summary = RunSummary(config=cfg_dict, folder=str(folder), budget_ms=config.max_latency_ms)
    from hwnas.data import embedded_path

    task = config.task or str(embedded_path("sst2/train.tsv"))
    eval_ = config.eval or (None if config.task else str(embedded_path("sst2/dev.tsv")))
    done = _done(config)

    def stage(name: str, fn: Callable[[], tuple[str, str, str]]) -> None:
        start = time.perf_counter()
        status, output, detail = fn()
        summary.stages.append(StageResult(name, status, time.perf_counter() - start, output, detail))
        cb.stage_end(name, status, detail)

    # 1-2. profile and predictor
    predictor_path = Path(config.predictor) if config.predictor else folder / "predictor.hwnas"

    def do_profile() -> tuple[str, str, str]:
        if done["profile"]:
            return "reused", str(predictor_path), "predictor exists; no profiling needed"
        from hwnas.devices.timing import TimingConfig
        from hwnas.profiling import ProfileConfig, profile

        timing = TimingConfig.quick() if config.quick_timing else TimingConfig(max_time_s=config.profile_max_time_s)
        pcfg = ProfileConfig(device=config.device, space=space, samples=config.profile_samples,
                             seq_lens=(config.seq_len,), threads=config.threads, seed=config.seed, timing=timing)
        out = folder / "profile.jsonl"
        counts = {"done": 0, "skip": 0}

        def on_start(todo: int, skipped: int) -> None:
            counts["skip"] = skipped
            cb.stage_start("profile", todo + skipped, f"{todo} architectures to measure, {skipped} already measured")
            cb.stage_advance("profile", skipped)

        def on_record(record: dict[str, Any]) -> None:
            counts["done"] += 1
            cb.stage_advance("profile", counts["skip"] + counts["done"], f"{record['latency_ms']:.2f} ms")

        s = profile(pcfg, out, resume=True, on_start=on_start, on_record=on_record)
        status = "resumed" if s.skipped else "ran"
        return status, str(out), f"{s.measured + s.skipped} architectures, {s.latency_ms_min:.2f}-{s.latency_ms_max:.2f} ms" \
            if s.measured else f"{s.skipped} architectures (all reused)"

    def do_predictor() -> tuple[str, str, str]:
        if done["predictor"]:
            return "reused", str(predictor_path), ""
        cb.stage_start("predictor", None, "fitting physics + XGBoost predictor")
        from hwnas.predictors.bundle import save_bundle
        from hwnas.predictors.training import fit_predictor, load_measurements

        meas = load_measurements(folder / "profile.jsonl")
        p = fit_predictor(meas, seed=config.seed, n_folds=min(5, max(2, len(meas) // 4)))
        save_bundle(p, predictor_path, overwrite=False)
        from hwnas.plots.predictor import plot_paths, write_predictor_plots

        write_predictor_plots(meas.y, p.cv_predictions_, meas.X, meas.inputs, p.manifest,
                              *plot_paths(None, predictor_path.with_suffix("")), kind="out-of-fold")
        cv = p.manifest.get("metrics", {}).get("cv", {})
        detail = (f"cross-validated: {cv['within_10']:.0%} within 10%, MAPE {cv['mape']:.1%} on {cv['n']} measurements"
                  if {"within_10", "mape", "n"} <= set(cv) else "")
        return "ran", str(predictor_path), detail

    stage("profile", do_profile)
    stage("predictor", do_predictor)
    from hwnas.predictors import load_predictor

    predictor = load_predictor(predictor_path)
    predictor.check_device(config.device)
    from hwnas.predictors.host import check_host

    check_host(predictor.manifest, strict=config.strict)  # a warning (HostMismatchWarning) unless strict

    # 3. supernet
    supernet_path = Path(config.supernet) if config.supernet else folder / "supernet"

    def do_supernet() -> tuple[str, str, str]:
        if done["supernet"]:
            return "reused", str(supernet_path), ""
        from hwnas.supernet.train import TrainConfig as SupernetConfig, train_supernet

        resume = (supernet_path / "checkpoints").exists() or (supernet_path / "supernet.json").is_file()
        cb.stage_start("supernet", config.supernet_steps, f"training {space} supernet for {config.supernet_steps} steps")

        def log(line: str) -> None:
            if line.startswith("checkpoint step "):
                try:
                    cb.stage_advance("supernet", int(line.split()[2]))
                except (IndexError, ValueError):
                    pass
            elif line.startswith("warning"):
                cb.status(f"supernet: {line}")

        scfg = SupernetConfig(space=space, out=str(supernet_path), teacher=config.teacher, steps=config.supernet_steps,
                              batch_size=config.supernet_batch, seq_len=config.supernet_seq_len,
                              max_rows=config.supernet_rows, checkpoint_every=max(1, min(25, config.supernet_steps // 4)),
                              seed=config.seed, heldout=min(128, max(16, (config.supernet_rows or 2000) // 8)))
        r = train_supernet(scfg, resume=resume, progress=False, log=log)
        from hwnas.plots.training import write_supernet_plot

        write_supernet_plot(supernet_path)
        return ("resumed" if r.resumed_from else "ran"), str(supernet_path), \
            f"{r.steps_done} steps, loss {r.first_loss:.3f} -> {r.last_loss:.3f}" if r.first_loss is not None else ""

    stage("supernet", do_supernet)

    # 4. search
    search_dir = folder / "search"

    def do_search() -> tuple[str, str, str]:
        if done["search"]:
            w = json.loads((search_dir / "winner.json").read_text())
            return "reused", str(search_dir / "winner.json"), _arch_text(w["arch"])
        from hwnas.search import search
        from hwnas.supernet.estimate import SupernetEstimator

        estimator = SupernetEstimator(str(supernet_path), metric="loss", threads=None)
        resume = search_dir.is_dir() and (search_dir / "config.json").is_file()
        cb.stage_start("search", config.search_evaluations, f"{config.strategy}, {config.search_evaluations} evaluations")
        result = search(predictor=str(predictor_path), estimator=estimator, max_latency_ms=config.max_latency_ms,
                        space=space, seq_len=config.seq_len, strategy=config.strategy,
                        evaluations=config.search_evaluations, seed=config.seed, out=search_dir, resume=resume,
                        describe={"supernet": str(supernet_path)},
                        on_progress=lambda p: cb.stage_advance("search", p.evaluations, f"best {p.best_feasible_score:.4g}"))
        if result.winner is None:
            raise InvalidConfig(f"the search found no architecture of space {space!r} within {config.max_latency_ms:g} ms; "
                                "raise --max-latency or choose another --space")
        w = json.loads((search_dir / "winner.json").read_text())
        return ("resumed" if resume else "ran"), str(search_dir / "winner.json"), _arch_text(w["arch"])

    stage("search", do_search)
    summary.winner = json.loads((search_dir / "winner.json").read_text())

    # 5. distill + export
    def do_distill() -> tuple[str, str, str]:
        from hwnas.distill.api import DistillConfig, distill

        student_dir = folder / "student"
        dcfg = DistillConfig(arch=str(search_dir / "winner.json"), task=task, eval=eval_, teacher=config.teacher,
                             supernet=str(supernet_path), steps=config.distill_steps, lr=config.distill_lr,
                             teacher_steps=config.teacher_steps,
                             batch_size=config.batch_size, max_len=config.max_len, limit=config.limit,
                             eval_limit=config.eval_limit, predictor=str(predictor_path), threads=config.threads,
                             device=config.device, seq_len=config.seq_len, latency_batch_size=1, strict=config.strict,
                             timing="quick" if config.quick_timing else "default", seed=config.seed,
                             cache_dir=str(folder / "teachers"), checkpoint_every=max(1, min(50, config.distill_steps // 4)))
        existed = (student_dir / "report.json").is_file()
        started: set[str] = set()

        def on_step(st: str, s: int, n: int, parts: dict[str, float]) -> None:
            key = "distill" if st == "distill" else "teacher"
            if key not in started:
                started.add(key)
                cb.stage_start(key, n, "fine-tuning the teacher on the task" if key == "teacher" else "distilling the winner")
            cb.stage_advance(key, s, f"loss {parts.get('loss', float('nan')):.4f}")

        report = distill(dcfg, student_dir, on_status=cb.status, on_step=on_step)
        summary.report = report
        if not existed or not (student_dir / "training.png").is_file():
            from hwnas.plots.training import write_distill_plot

            write_distill_plot(student_dir)
        return ("reused" if existed else "ran"), str(student_dir), \
            f"accuracy {report['student_score']:.4f} (teacher {report['teacher_score']:.4f})"

    stage("distill", do_distill)

    # 6. verify: the student as measured by the distill stage (device registry, timing protocol,
    # the predictor's reference interleaved) against the budget, raw and drift-normalised
    def do_verify() -> tuple[str, str, str]:
        report = summary.report or {}
        summary.verification = _verification(report, config.max_latency_ms)
        v = summary.verification
        if v is None:
            summary.within_budget = None
            return "ran", str(folder / "summary.json"), "not measured"
        summary.within_budget = v["within_budget"]
        for line in v["verdict"]:
            cb.status(f"verify: {line}")
        norm = v["within_budget_normalised"]
        detail = (f"measured {v['measured_ms']:.2f} ms on {v['device']} at seq {v['seq_len']} "
                  f"({'within' if v['within_budget'] else 'OVER'} the {config.max_latency_ms:g} ms budget"
                  + ("" if norm is None else f"; drift-normalised {v['normalised_ms']:.2f} ms, "
                     f"{'within' if norm else 'OVER'}") + f"), predicted {v['predicted_ms'] or float('nan'):.2f} ms")
        return "ran", str(folder / "summary.json"), detail

    stage("verify", do_verify)
    summary.wall_s = time.perf_counter() - t0
    tmp = folder / "summary.json.tmp"
    tmp.write_text(json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
    tmp.replace(folder / "summary.json")
    from hwnas.report import write_report

    write_report(folder)  # report.html: every stage on one page (rebuild with `hwnas report FOLDER`)
    return summary


def _arch_text(arch: dict[str, Any]) -> str:
    return ",".join(f"{k}={arch[k]}" for k in ("layers", "hidden", "heads", "ffn"))


def _verification(report: dict[str, Any], budget_ms: float) -> dict[str, Any] | None:
    """``summary.json``'s verification: what was measured where, the drift and both verdicts.

    ``within_budget`` is the raw verdict (the median measured now);
    ``within_budget_normalised`` divides out the machine's speed relative to
    profiling time (``None`` without a reference); ``verdict`` says both in words.
    """
    from hwnas.profiling.reference import Drift
    from hwnas.search.verify import budget_verdicts

    m = report.get("measured_latency") or {}
    measured = (m.get("student") or {}).get("latency_ms")
    if measured is None:
        return None
    d = m.get("drift") or {}
    drift = Drift(d.get("reference_arch"), d.get("reference_ms_now"), d.get("reference_ms_profiled"))
    pred = report.get("predicted_latency") or {}
    out = {k: m.get(k) for k in ("device", "dtype", "threads", "clock", "seq_len", "batch_size")}
    out.update(measured=(m.get("student") or {}).get("measured"), measured_ms=measured,
               encoder_ms=(m.get("student_encoder") or {}).get("latency_ms"),
               deployed_vs_profiled=m.get("deployed_vs_profiled"),
               normalised_ms=m.get("student_normalised_ms") if d.get("reference_arch") else None,
               drift=drift.to_dict(), predicted_ms=pred.get("latency_ms"), predicted_upper_ms=pred.get("latency_upper_ms"))
    out.update(budget_verdicts(measured, budget_ms, drift, out["normalised_ms"]))
    return out
