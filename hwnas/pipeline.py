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

Each stage is a :class:`Stage` object with an ``output``, ``done()`` and ``run()``
(see :data:`STAGE_CLASSES`); :func:`run_pipeline` builds them on one :class:`RunContext`
and loops: a done stage is reused, any other is run. Progress goes out as
:class:`~hwnas.progress.ProgressEvent` s and status lines; the command line draws them.

The space is chosen from the budget when not given: ``tiny`` (about 1-6 ms on
one CPU thread) for budgets up to 8 ms, ``small`` above. The duration printed
at the start is a rough estimate from per-unit costs (seconds per profiled
architecture, per training step, ...) for an otherwise idle 2-core machine;
they are round figures, not a calibrated model, and a busy machine is slower.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hwnas._files import atomic_write_text
from hwnas.errors import InvalidConfig, check_int
from hwnas.progress import ProgressCallback, StatusCallback, emit

__all__ = [
    "RunConfig", "RunContext", "RunSummary", "StageResult", "Stage", "ProfileStage", "PredictorStage", "SupernetStage",
    "SearchStage", "DistillStage", "VerifyStage", "STAGES", "build_stages", "run_stage", "run_pipeline",
    "estimate_seconds", "choose_space", "quick_config",
]


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
        device_options: the device's own options (``{"cuda_graphs": True}``), for profiling; the measurement of
            the student takes them from the predictor's manifest.
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
    device_options: Mapping[str, Any] = field(default_factory=dict)
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
            check_int(name, getattr(self, name))
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


# ------------------------------------------------------------------ stages
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
        return asdict(self)


@dataclass
class RunContext:
    """What the stages share: the settings, where each output goes, the callbacks and what earlier stages produced.

    A stage reads its inputs from here and writes its outputs into the run folder
    (and its in-memory results, such as the distillation report, into
    ``summary``), so a test can build a context on tiny inputs and run one stage.
    """

    config: RunConfig
    on_progress: ProgressCallback | None = None
    on_status: StatusCallback | None = None
    summary: RunSummary | None = None

    def __post_init__(self) -> None:
        if self.summary is None:
            cfg = {**asdict(self.config), "space": self.space, "folder": str(self.folder)}
            self.summary = RunSummary(config=cfg, folder=str(self.folder), budget_ms=self.config.max_latency_ms)

    @property
    def folder(self) -> Path:
        return self.config.folder

    @property
    def space(self) -> str:
        return self.config.space_name

    @property
    def predictor_path(self) -> Path:
        return Path(self.config.predictor) if self.config.predictor else self.folder / "predictor.hwnas"

    @property
    def supernet_path(self) -> Path:
        return Path(self.config.supernet) if self.config.supernet else self.folder / "supernet"

    @property
    def search_dir(self) -> Path:
        return self.folder / "search"

    @property
    def student_dir(self) -> Path:
        return self.folder / "student"

    def status(self, text: str) -> None:
        if self.on_status is not None:
            self.on_status(text)

    def progress(self, stage: str, completed: int, total: int | None = None,
                 metrics: dict[str, float] | None = None, checkpoint: bool = False) -> None:
        emit(self.on_progress, stage, completed, total, metrics, checkpoint)


class Stage(ABC):
    """One step of ``hwnas run``: knows its output, whether it is done, and how to run.

    ``run()`` returns ``(status, detail)`` with status ``"ran"`` or ``"resumed"``;
    ``reuse()`` is called instead when ``done()`` and returns the detail line.
    """

    name: str = ""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.config = ctx.config

    @property
    @abstractmethod
    def output(self) -> Path:
        """The file or folder this stage writes."""

    @abstractmethod
    def done(self) -> bool:
        """Whether the output is there and can be reused as it is."""

    @abstractmethod
    def run(self) -> tuple[str, str]:
        """Produce the output; returns ``(status, detail)``."""

    def reuse(self) -> str:
        """The detail line of a reused output (and anything later stages need from it)."""
        return ""


class ProfileStage(Stage):
    """Measure ``profile_samples`` architectures into ``profile.jsonl`` (resumed: measured ones are skipped)."""

    name = "profile"

    @property
    def output(self) -> Path:
        return self.ctx.folder / "profile.jsonl"

    def done(self) -> bool:
        return bool(self.config.predictor) or self.ctx.predictor_path.is_file()

    def reuse(self) -> str:
        return "predictor exists; no profiling needed"

    def run(self) -> tuple[str, str]:
        from hwnas.devices.timing import TimingConfig
        from hwnas.profiling import ProfileConfig, profile

        c = self.config
        timing = TimingConfig.quick() if c.quick_timing else TimingConfig(max_time_s=c.profile_max_time_s)
        pcfg = ProfileConfig(device=c.device, space=self.ctx.space, samples=c.profile_samples, seq_lens=(c.seq_len,),
                             threads=c.threads, seed=c.seed, timing=timing, device_options=dict(c.device_options))
        counts = {"done": 0, "skip": 0, "total": 0}

        def on_start(todo: int, skipped: int) -> None:
            counts.update(skip=skipped, total=todo + skipped)
            self.ctx.status(f"profile: {todo} architectures to measure, {skipped} already measured")
            self.ctx.progress(self.name, skipped, todo + skipped)

        def on_record(record: dict[str, Any]) -> None:
            counts["done"] += 1
            self.ctx.progress(self.name, counts["skip"] + counts["done"], counts["total"],
                              {"latency_ms": float(record["latency_ms"])})

        s = profile(pcfg, self.output, resume=True, on_start=on_start, on_record=on_record)
        if not s.measured:
            return "resumed", f"{s.skipped} architectures (all reused)"
        return ("resumed" if s.skipped else "ran"), \
            f"{s.measured + s.skipped} architectures, {s.latency_ms_min:.2f}-{s.latency_ms_max:.2f} ms"


class PredictorStage(Stage):
    """Fit the physics + XGBoost predictor on ``profile.jsonl`` into ``predictor.hwnas`` (with its plots)."""

    name = "predictor"

    @property
    def output(self) -> Path:
        return self.ctx.predictor_path

    def done(self) -> bool:
        return bool(self.config.predictor) or self.output.is_file()

    def run(self) -> tuple[str, str]:
        from hwnas.plots.predictor import plot_paths, write_predictor_plots
        from hwnas.predictors.bundle import save_bundle
        from hwnas.predictors.training import fit_predictor, load_measurements

        self.ctx.status("predictor: fitting physics + XGBoost predictor")
        self.ctx.progress(self.name, 0, None)
        meas = load_measurements(self.ctx.folder / "profile.jsonl")
        p = fit_predictor(meas, seed=self.config.seed, n_folds=min(5, max(2, len(meas) // 4)))
        save_bundle(p, self.output, overwrite=False)
        write_predictor_plots(meas.y, p.cv_predictions_, meas.X, meas.inputs, p.manifest,
                              *plot_paths(None, self.output.with_suffix("")), kind="out-of-fold")
        cv = p.manifest.get("metrics", {}).get("cv", {})
        detail = (f"cross-validated: {cv['within_10']:.0%} within 10%, MAPE {cv['mape']:.1%} on {cv['n']} measurements"
                  if {"within_10", "mape", "n"} <= set(cv) else "")
        return "ran", detail


def check_predictor(ctx: RunContext) -> None:
    """Refuse a predictor of another device before anything is trained; warn (or refuse, strict) on another host."""
    from hwnas.predictors import load_predictor
    from hwnas.predictors.host import check_host

    predictor = load_predictor(ctx.predictor_path)
    predictor.check_device(ctx.config.device)
    check_host(predictor.manifest, strict=ctx.config.strict)  # a warning (HostMismatchWarning) unless strict


class SupernetStage(Stage):
    """Train the weight-sharing supernet for ``supernet_steps`` steps (resumed from its last checkpoint)."""

    name = "supernet"

    @property
    def output(self) -> Path:
        return self.ctx.supernet_path

    def done(self) -> bool:
        if self.config.supernet:
            return True
        meta = self.output / "supernet.json"
        try:
            return json.loads(meta.read_text()).get("steps_done", 0) >= self.config.supernet_steps
        except (OSError, ValueError):
            return False

    def run(self) -> tuple[str, str]:
        from hwnas.plots.training import write_supernet_plot
        from hwnas.supernet.train import TrainConfig as SupernetConfig

        c, out = self.config, self.output
        resume = (out / "checkpoints").exists() or (out / "supernet.json").is_file()
        self.ctx.status(f"supernet: training {self.ctx.space} supernet for {c.supernet_steps} steps")
        self.ctx.progress(self.name, 0, c.supernet_steps)
        scfg = SupernetConfig(space=self.ctx.space, out=str(out), teacher=c.teacher, steps=c.supernet_steps,
                              batch_size=c.supernet_batch, seq_len=c.supernet_seq_len, max_rows=c.supernet_rows,
                              checkpoint_every=max(1, min(25, c.supernet_steps // 4)), seed=c.seed,
                              heldout=min(128, max(16, (c.supernet_rows or 2000) // 8)))
        from hwnas.outputs import folder_lock
        from hwnas.supernet.train import train_supernet

        with folder_lock(out, hint="wait for that training to finish"):  # the lock `hwnas supernet train` takes
            r = train_supernet(scfg, resume=resume, on_progress=self.ctx.on_progress,
                               on_status=lambda line: self.ctx.status(f"supernet: {line}"))
        write_supernet_plot(out)
        detail = f"{r.steps_done} steps, loss {r.first_loss:.3f} -> {r.last_loss:.3f}" if r.first_loss is not None else ""
        return ("resumed" if r.resumed_from else "ran"), detail


class SearchStage(Stage):
    """Search the space for the best student predicted within the budget, scored by the supernet."""

    name = "search"

    @property
    def output(self) -> Path:
        return self.ctx.search_dir / "winner.json"

    def done(self) -> bool:
        return self.output.is_file()

    def reuse(self) -> str:
        self.ctx.summary.winner = json.loads(self.output.read_text())
        return _arch_text(self.ctx.summary.winner["arch"])

    def run(self) -> tuple[str, str]:
        from hwnas.search import search
        from hwnas.supernet.estimate import SupernetEstimator

        c, folder = self.config, self.ctx.search_dir
        estimator = SupernetEstimator(str(self.ctx.supernet_path), metric="loss", threads=None)
        resume = folder.is_dir() and (folder / "config.json").is_file()
        self.ctx.status(f"search: {c.strategy}, {c.search_evaluations} evaluations")
        self.ctx.progress(self.name, 0, c.search_evaluations)
        result = search(predictor=str(self.ctx.predictor_path), estimator=estimator, max_latency_ms=c.max_latency_ms,
                        space=self.ctx.space, seq_len=c.seq_len, strategy=c.strategy, evaluations=c.search_evaluations,
                        seed=c.seed, out=folder, resume=resume, describe={"supernet": str(self.ctx.supernet_path)},
                        on_progress=lambda p: self.ctx.progress(self.name, p.evaluations, p.total,
                                                                {"best": p.best_feasible_score}))
        if result.winner is None:
            raise InvalidConfig(f"the search found no architecture of space {self.ctx.space!r} within "
                                f"{c.max_latency_ms:g} ms; raise --max-latency or choose another --space")
        return ("resumed" if resume else "ran"), self.reuse()


class DistillStage(Stage):
    """Fine-tune the teacher, distil the winner from it, export (Hugging Face + ONNX) and measure the student.

    ``hwnas.distill.distill`` itself reuses a finished folder with the same settings
    and refuses one with other settings, so reusing goes through it too.
    """

    name = "distill"

    @property
    def output(self) -> Path:
        return self.ctx.student_dir

    def done(self) -> bool:
        return (self.output / "report.json").is_file()

    def reuse(self) -> str:
        return self._distill()

    def run(self) -> tuple[str, str]:
        return "ran", self._distill()

    def _distill(self) -> str:
        from hwnas.distill.api import DistillConfig
        from hwnas.data import embedded_path
        from hwnas.plots.training import write_distill_plot

        c, ctx = self.config, self.ctx
        task = c.task or str(embedded_path("sst2/train.tsv"))
        eval_ = c.eval or (None if c.task else str(embedded_path("sst2/dev.tsv")))
        dcfg = DistillConfig(arch=str(ctx.search_dir / "winner.json"), task=task, eval=eval_, teacher=c.teacher,
                             supernet=str(ctx.supernet_path), steps=c.distill_steps, lr=c.distill_lr,
                             teacher_steps=c.teacher_steps, batch_size=c.batch_size, max_len=c.max_len, limit=c.limit,
                             eval_limit=c.eval_limit, predictor=str(ctx.predictor_path), threads=c.threads,
                             device=c.device, seq_len=c.seq_len, latency_batch_size=1, strict=c.strict,
                             timing="quick" if c.quick_timing else "default", seed=c.seed,
                             cache_dir=str(ctx.folder / "teachers"), checkpoint_every=max(1, min(50, c.distill_steps // 4)))
        from hwnas.distill.api import distill

        report = distill(dcfg, self.output, on_status=ctx.on_status, on_progress=ctx.on_progress)
        ctx.summary.report = report
        if not (self.output / "training.png").is_file():
            write_distill_plot(self.output)
        return f"accuracy {report['student_score']:.4f} (teacher {report['teacher_score']:.4f})"


class VerifyStage(Stage):
    """The student as the distill stage measured it (device registry, timing protocol, the predictor's
    reference interleaved) against the budget, raw and drift-normalised; always recomputed."""

    name = "verify"

    @property
    def output(self) -> Path:
        return self.ctx.folder / "summary.json"

    def done(self) -> bool:
        return False

    def run(self) -> tuple[str, str]:
        summary, budget = self.ctx.summary, self.config.max_latency_ms
        v = summary.verification = _verification(summary.report or {}, budget)
        if v is None:
            summary.within_budget = None
            return "ran", "not measured"
        summary.within_budget = v["within_budget"]
        for line in v["verdict"]:
            self.ctx.status(f"verify: {line}")
        norm = v["within_budget_normalised"]
        detail = (f"measured {v['measured_ms']:.2f} ms on {v['device']} at seq {v['seq_len']} "
                  f"({'within' if v['within_budget'] else 'OVER'} the {budget:g} ms budget"
                  + ("" if norm is None else f"; drift-normalised {v['normalised_ms']:.2f} ms, "
                     f"{'within' if norm else 'OVER'}") + f"), predicted {v['predicted_ms'] or float('nan'):.2f} ms")
        return "ran", detail


#: The stages of ``hwnas run``, in order.
STAGE_CLASSES: tuple[type[Stage], ...] = (ProfileStage, PredictorStage, SupernetStage, SearchStage, DistillStage,
                                          VerifyStage)
STAGES = tuple(cls.name for cls in STAGE_CLASSES)


def build_stages(ctx: RunContext) -> list[Stage]:
    """The stages of ``hwnas run`` on ``ctx``, in order."""
    return [cls(ctx) for cls in STAGE_CLASSES]


def estimate_seconds(config: RunConfig) -> dict[str, float]:
    """Rough seconds per stage still to run (0 for stages whose output is reused)."""
    done = {s.name: s.done() for s in build_stages(RunContext(config))}
    space = config.space_name
    scale = 0.25 if config.quick_timing else 1.0
    est = {
        "profile": config.profile_samples * (_COST_S["profile_sample"] * scale + 0.3),
        "predictor": _COST_S["predictor_fit"],
        "supernet": config.supernet_steps * _COST_S["supernet_step"].get(space, 2.5) * config.supernet_batch / 16,
        "search": config.search_evaluations * (
            _COST_S["search_eval"] + (_COST_S["search_step_bo"] if config.strategy == "bo" else 0.0)),
        "distill": (config.teacher_steps * _COST_S["teacher_step"] + config.distill_steps * _COST_S["distill_step"])
        * config.batch_size / 32 + _COST_S["export"],
        "verify": 5.0,
    }
    est = {k: 0.0 if done[k] else v for k, v in est.items()}
    est["fixed"] = _COST_S["fixed"]
    return est


def run_stage(stage: Stage) -> StageResult:
    """Run (or reuse) one stage and record it in the context's summary."""
    start = time.perf_counter()
    if stage.done():
        status, detail = "reused", stage.reuse()
    else:
        status, detail = stage.run()
    result = StageResult(stage.name, status, time.perf_counter() - start, str(stage.output), detail)
    stage.ctx.summary.stages.append(result)
    stage.ctx.progress(stage.name, 1, 1)  # the stage is finished: its row is full
    stage.ctx.status(f"{stage.name}: {status}" + (f" ({detail})" if detail else ""))
    return result


def run_pipeline(config: RunConfig, *, on_progress: ProgressCallback | None = None,
                 on_status: StatusCallback | None = None) -> RunSummary:
    """Run (or reuse) every stage in order and write ``summary.json`` and ``report.html`` in the run folder.

    Args:
        on_progress: receives :class:`~hwnas.progress.ProgressEvent` s; ``stage`` is one of
            :data:`STAGES` or ``"teacher"``/``"agnostic"`` (the distill stage's own steps). A stage's
            last event has ``completed == total == 1``.
        on_status: one line of text at a time (what is starting, what was reused, warnings).
    """
    t0 = time.perf_counter()
    ctx = RunContext(config, on_progress=on_progress, on_status=on_status)
    from hwnas.outputs import claim_output_folder

    claim_output_folder(ctx.folder, kind="run", option="--work-dir/--name")  # never a folder hwnas did not make
    for stage in build_stages(ctx):
        run_stage(stage)
        if isinstance(stage, PredictorStage):
            check_predictor(ctx)  # before hours of training, not after
    summary = ctx.summary
    summary.wall_s = time.perf_counter() - t0
    atomic_write_text(ctx.folder / "summary.json", json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
    from hwnas.report import write_report

    write_report(ctx.folder)  # report.html: every stage on one page (rebuild with `hwnas report FOLDER`)
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
