"""Students found by ``hwnas search`` at fractions of the teacher's measured CPU latency, distilled over seeds.

The figure of issue 14: for every task (``--tasks sst2,agnews``) and every fraction (``--fractions 3,4,6``)
the student ``hwnas search`` finds under ``teacher latency / fraction``, distilled with one recipe
(``--recipe``) once per seed (``--seeds 0,1,2``); printed per task: architecture, parameters, measured
latency and speed-up against the teacher (one interleaved measurement), accuracy mean ± sd over the seeds,
the share of the teacher's accuracy kept (mean and worst seed) and the CPU seconds per run, then whether
the 1/4 student keeps at least 97% of the teacher (mean over seeds), read from the figures printed.

Stages, each cached under ``--work`` and skipped when rerun (a killed run continues where it stopped):

1. the task teacher: ``--teacher-for TASK=FOLDER`` (a fine-tuned folder as ``hwnas distill`` caches
   them), else fine-tuned here with hwnas's defaults (one epoch, teacher seed 0, cached in
   ``<work>/teachers``). Its accuracy is scored here, through hwnas's evaluation code, on the same
   evaluation rows and token length as the students (``<work>/<task>/teacher.json``);
2. the teacher's latency: 1 thread, seq 128, batch 1, the ``thread_cpu`` clock (time the process was
   descheduled by other load does not count), as bench_distill.py measures it, in interleaved rounds with a
   reference architecture (the largest of ``--space``, inside the predictor's domain);
3. per fraction, ``hwnas search --predictor P --max-latency <budget>`` (its default estimator, or
   ``--estimator``; ``--search-args`` for anything else) into ``<work>/search/<task>/1-<f>``. The search
   keeps the predictor's calibrated *upper* latency within the budget, in the predictor's units (the
   wall clock of its profiling run, on a quieter machine), so by default (``--budget-basis normalised``)
   the budget is the teacher's latency in those units divided by the fraction: its measured ratio to the
   reference times the reference's predicted latency. ``--budget-basis measured`` divides the raw median
   instead (on a loaded machine that median is inflated, and the budgets with it);
4. the winners and the teacher measured together in interleaved rounds (same clock and settings;
   ``<work>/<task>/latency.json``): the speed-up printed is this ratio;
5. every winner distilled per seed by ``hwnas distill`` in a subprocess (``nice``, one thread,
   ``--no-measure``), its CPU time kept attempt by attempt (bench_end_to_end.py's CPU ledger, in
   ``<work>/cpu``); each finished run is one line of ``<work>/results.jsonl``.

``--ledger FILE`` also keeps every finished run in a committed JSONL file: ``--work`` (under ``bench/out/``)
is gone on a fresh machine, which then takes the ledger's runs back instead of distilling them again when its
teacher has the very same weights (``bench/_ledger.py``).

One runner per ``--work`` (``<work>/.lock``); the settings that give the figures their meaning are kept
in ``<work>/settings.json`` and a rerun with other settings is refused (use another ``--work``).

Tasks (``--data`` is the folder of ../shared/data/README.md):

* ``sst2``: training rows from sst2/train.tsv (the first ``--limit``), scored on the first
  ``--eval-rows`` of sst2/dev.tsv;
* ``agnews``: agnews/train.tsv split once into ``<work>/agnews/train.tsv`` (all rows but the last 999)
  and ``<work>/agnews/dev.tsv`` (the last 999, the rows ``hwnas distill`` holds out of the whole file,
  so a teacher fine-tuned on the whole file by hwnas never saw them); the first ``--limit`` training rows,
  the first ``--eval-rows`` evaluation rows.

The issue's run (figures at this scale take hours of CPU; see docs/distill.md)::

    nice -n 10 python bench/bench_students.py --data ../shared/data --work bench/out/students \\
        --tasks sst2,agnews --teacher-for sst2=bench/out/ready/sst2-epoch1 \\
        --teacher-for agnews=bench/out/ground_truth/teachers/2298a7494be94016 \\
        --predictor bench/results/cpu-small.hwnas --space small --fractions 3,4,6 --seeds 0,1,2 \\
        --recipe default --max-len 64 --eval-rows 2000 --search-args "--strategy random --evaluations 1000"

(with the default estimator, ``params``, a random search with more evaluations than feasible architectures
scores every one of them, in seconds; the default Bayesian optimisation finds the same winner, slower)

Smoke (minutes)::

    python bench/bench_students.py --data ../shared/data --work /tmp/students-smoke --tasks sst2 \\
        --teacher-for sst2=bench/out/ready/sst2-epoch1 --predictor bench/results/cpu-small.hwnas \\
        --fractions 4 --seeds 0 --steps 5 --limit 200 --eval-rows 50 --max-len 64 \\
        --search-args "--strategy random --evaluations 32" --results /tmp/students-smoke/results.json
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ledger  # noqa: E402
from bench_end_to_end import (  # noqa: E402
    BadInput, CpuLedger, Interrupted, atomic_json, hwnas_cmd, parse_seeds, read_json, run_logged, tail,
)

TASKS = ("sst2", "agnews")
SEQ_LEN, BATCH_SIZE, THREADS, CLOCK = 128, 1, 1, "thread_cpu"
KEEP_TARGET, TARGET_FRACTION = 0.97, 4.0
#: Settings that give the figures their meaning: a rerun into the same --work must keep them.
FIXED = ("data", "space", "predictor", "estimator", "search_args", "budget_basis", "recipe", "steps", "batch_size", "lr", "max_len",
         "limit", "eval_rows", "teacher_for")


#: Where the figures go when ``--results`` is not given (relative to the working directory).
DEFAULT_RESULTS = "bench/results/bench_students.json"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ input
def parse_fractions(text: str) -> list[float]:
    try:
        out = [float(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        raise BadInput(f"--fractions must be comma-separated numbers > 1 (e.g. 3,4,6); got {text!r}") from None
    if not out or any(not (math.isfinite(f) and f > 1) for f in out) or len(set(out)) != len(out):
        raise BadInput(f"--fractions must be distinct numbers > 1 (the budget is teacher latency / fraction, "
                       f"e.g. 3,4,6); got {text!r}")
    return out


def parse_teachers(items: list[str], tasks: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        task, sep, folder = item.partition("=")
        if not sep or task not in TASKS:
            raise BadInput(f"--teacher-for must be TASK=FOLDER with TASK one of {', '.join(TASKS)}; got {item!r}")
        if not (Path(folder) / "config.json").is_file():
            raise BadInput(f"--teacher-for {task}: {folder} is not a model folder (no config.json)")
        out[task] = str(Path(folder).resolve())
    return {t: f for t, f in out.items() if t in tasks}


def check_inputs(args) -> None:
    """Everything that can be refused before anything is measured or trained (one line, exit 2)."""
    args.task_list = [t.strip() for t in args.tasks.split(",") if t.strip()]
    bad = [t for t in args.task_list if t not in TASKS]
    if bad or not args.task_list or len(set(args.task_list)) != len(args.task_list):
        raise BadInput(f"--tasks: unknown or repeated task {(bad or [args.tasks])[0]!r}; tasks: {', '.join(TASKS)}")
    args.fraction_list = parse_fractions(args.fractions)
    args.seed_list = parse_seeds(args.seeds)
    args.teachers = parse_teachers(args.teacher_for, args.task_list)
    if not Path(args.predictor).is_file():
        raise BadInput(f"--predictor {args.predictor} is not a file (a .hwnas bundle from `hwnas predictor fit`)")
    data = Path(args.data)
    need = {"sst2": ("sst2/train.tsv", "sst2/dev.tsv"), "agnews": ("agnews/train.tsv",)}
    for task in args.task_list:
        for rel in need[task]:
            if not (data / rel).is_file():
                raise BadInput(f"--data {args.data}: no {rel} (the folder of ../shared/data/README.md)")
    for flag, value, least in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 1),
                               ("--max-len", args.max_len, 8), ("--limit", args.limit, 2),
                               ("--eval-rows", args.eval_rows, 1)):
        if value is not None and value < least:
            raise BadInput(f"{flag} must be an integer >= {least}; got {value}")
    from hwnas.distill.recipes import get_recipe
    from hwnas.errors import HwnasError

    try:
        get_recipe(args.recipe)
    except HwnasError as exc:
        raise BadInput(f"--recipe: {exc}") from None
    if args.estimator is not None:
        from hwnas.estimators import ESTIMATORS

        if args.estimator not in ESTIMATORS.names():
            raise BadInput(f"--estimator: unknown estimator {args.estimator!r}; known: {', '.join(ESTIMATORS.names())}")
    try:
        shlex.split(args.search_args)
    except ValueError as exc:
        raise BadInput(f"--search-args: cannot split {args.search_args!r}: {exc}") from None
    try:
        from hwnas.predictors import load_predictor

        args.loaded_predictor = load_predictor(args.predictor)
    except HwnasError as exc:
        raise BadInput(f"--predictor {args.predictor}: {exc}") from None


def check_settings(args, work: Path) -> None:
    """Refuse a rerun into ``work`` with settings that would change what its finished runs mean."""
    now = {k: getattr(args, k) for k in FIXED}
    now["data"] = str(Path(args.data).resolve())
    now["predictor"] = str(Path(args.predictor).resolve())
    now["teacher_for"] = args.teachers
    path = work / "settings.json"
    if path.is_file():
        before = read_json(path)
        changed = sorted(k for k in FIXED if before.get(k) != json.loads(json.dumps(now[k])))
        if changed:
            raise BadInput(f"{work} holds runs made with other settings (changed: {', '.join(changed)}); "
                           "use another --work")
    else:
        atomic_json(path, now)


# ------------------------------------------------------------------ tasks and the teacher
def task_files(task: str, args, work: Path) -> tuple[str, str]:
    """``(training file, evaluation file)`` of a task (AG News split once into ``<work>/agnews``)."""
    data = Path(args.data)
    if task == "sst2":
        return str(data / "sst2/train.tsv"), str(data / "sst2/dev.tsv")
    from hwnas.distill.tasks import split_held_out

    train, dev = split_held_out(data / "agnews/train.tsv", work / "agnews")  # the rows hwnas holds out (999 here)
    return str(train), str(dev)


def _config(task: str, args, work: Path):
    """The DistillConfig the runs of ``task`` load their data with (recipe and typed options applied)."""
    from hwnas.distill.api import DistillConfig
    from hwnas.distill.recipes import apply_recipe

    train, dev = task_files(task, args, work)
    given: dict[str, Any] = {"arch": "layers=2,hidden=128,heads=2,ffn=512", "task": train, "eval": dev,
                             "eval_limit": args.eval_rows, "limit": args.limit, "teacher_seed": 0,
                             "cache_dir": str(work / "teachers"), "measure": False}
    for name in ("steps", "batch_size", "lr", "max_len"):
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    return DistillConfig(**apply_recipe(args.recipe, given))


def teacher_stage(task: str, args, work: Path) -> dict[str, Any]:
    """The task teacher's folder, its accuracy on the students' evaluation rows and its measured latency."""
    path = work / task / "teacher.json"
    given = args.teachers.get(task)
    if path.is_file():
        rec = read_json(path)
        if given is None or rec["path"] == given:
            _log(f"{task}: reusing the teacher record {path}")
            return rec
    import torch
    from transformers import AutoTokenizer

    from hwnas.distill.api import load_data, teacher_train_config
    from hwnas.distill.data import encode
    from hwnas.distill.export import measure_models
    from hwnas.distill.models import architecture_of, init_student, set_attention
    from hwnas.distill.teacher import finetune_teacher, load_task_teacher
    from hwnas.training.teacher import resolve_teacher

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars: noise in a benchmark's log
    torch.set_num_threads(1)
    config = _config(task, args, work)
    train_data, eval_data, note = load_data(config)
    if given is None:
        _log(f"{task}: fine-tuning the teacher with hwnas's defaults into {work / 'teachers'} (cached) ...")
        tuned = finetune_teacher(resolve_teacher("default"), train_data, eval_data,
                                 teacher_train_config(config, len(train_data)), work / "teachers",
                                 max_len=config.max_len, on_status=_log,
                                 epochs=None if config.teacher_steps is not None else config.teacher_epochs)
        given = str(tuned.path)
        fine_tune = {k: tuned.info.get(k) for k in ("train_s", "cpu_s", "epochs", "best_step")}
        fine_tune["steps"] = (tuned.info.get("train_config") or {}).get("steps")
    else:
        fine_tune = None
    tok = AutoTokenizer.from_pretrained(given)
    teacher = load_task_teacher(given, encode(tok, eval_data, config.max_len), train_data.kind, train_data.num_labels)
    own = (teacher.info or {}).get("metrics", {})
    _log(f"{task}: teacher {given}: accuracy {teacher.metrics.get('accuracy'):.4f} on {len(eval_data)} rows of "
         f"{note} ({config.max_len} tokens); its teacher.json says {own}")
    set_attention(teacher.model, "sdpa")
    arch = architecture_of(teacher.model.config)
    ref = reference_arch(args)
    ref_model = init_student(ref, train_data.num_labels, init="random", teacher_path=given)[0].eval()
    set_attention(ref_model, "sdpa")
    _log(f"{task}: measuring the teacher's latency with the reference {ref.short} in interleaved rounds "
         f"(seq {SEQ_LEN}, batch {BATCH_SIZE}, {THREADS} thread, {CLOCK}) ...")
    both = measure_models({"teacher": teacher.model, "reference": ref_model}, seq_len=SEQ_LEN, batch_size=BATCH_SIZE,
                          threads=THREADS, clock=CLOCK)
    lat = both["teacher"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the teacher's 12 heads may lie outside the predictor's domain
        predicted = float(args.loaded_predictor.predict([arch], seq_len=SEQ_LEN, batch_size=BATCH_SIZE)[0])
        ref_predicted = float(args.loaded_predictor.predict([ref], seq_len=SEQ_LEN, batch_size=BATCH_SIZE)[0])
    # the teacher in the predictor's units: its measured ratio to the reference times the reference's prediction
    normalised = lat["latency_ms"] / both["reference"]["latency_ms"] * ref_predicted
    rec = {"task": task, "path": given, "arch": arch.key, "accuracy": teacher.metrics.get("accuracy"),
           "eval_rows": len(eval_data), "eval_source": note, "max_len": config.max_len,
           "train_rows": len(train_data), "teacher_json_metrics": own, "latency": lat, "predicted_ms": predicted,
           "reference": {"arch": ref.key, "latency": both["reference"], "predicted_ms": ref_predicted},
           "normalised_ms": normalised, "fine_tuned_here": fine_tune,
           "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_json(path, rec)
    return rec


def reference_arch(args):
    """The largest architecture of the searched space: inside the predictor's domain, near the teacher's size,
    so its measured-to-predicted ratio converts the teacher's measured latency into the predictor's units."""
    from hwnas.space import get_space

    return max(get_space(args.space).enumerate(), key=lambda a: (a.num_parameters(), a.heads))


def budget_base_ms(teacher: dict[str, Any], basis: str) -> float:
    """The teacher latency the fractions are taken of: ``normalised`` (the predictor's units, which the
    search compares its upper bound with) or ``measured`` (the raw median of this run's clock)."""
    return teacher["normalised_ms"] if basis == "normalised" else teacher["latency"]["latency_ms"]


# ------------------------------------------------------------------ search and latency
def _flabel(fraction: float) -> str:
    return f"1/{fraction:g}"


def search_stage(task: str, fraction: float, budget_ms: float, args, work: Path) -> dict[str, Any]:
    """The winner of ``hwnas search`` under ``budget_ms`` (searched once, then read back)."""
    folder = work / "search" / task / f"1-{fraction:g}"
    log = work / "logs" / f"search-{task}-1-{fraction:g}.log"
    ledger = CpuLedger(work / "cpu" / f"{log.stem}.json")
    cfg = folder / "config.json"
    done = cfg.is_file() and read_json(cfg).get("status") == "done" and (folder / "winner.json").is_file()
    if not done:
        resume = folder.is_dir() and any(folder.iterdir())
        cmd = hwnas_cmd(args, "search", "--predictor", args.predictor, "--max-latency", f"{budget_ms:.6g}ms",
                        "--out", str(folder), "--quiet", "--seq-len", str(SEQ_LEN), "--batch-size", str(BATCH_SIZE))
        if args.estimator:
            cmd += ["--estimator", args.estimator]
            if args.estimator == "task-proxy" and "--task" not in args.search_args:
                cmd += ["--task", task_files(task, args, work)[0]]
        cmd += shlex.split(args.search_args) + (["--resume"] if resume else [])
        _log(f"{task} {_flabel(fraction)}: hwnas search --max-latency {budget_ms:.3f}ms"
             f"{' (resuming)' if resume else ''} ...")
        rc, _, _ = run_logged(cmd, log, ledger)
        if rc != 0 or not (folder / "winner.json").is_file():
            raise RuntimeError(f"hwnas search exited {rc} (log {log}):\n{tail(log)}")
    w = read_json(folder / "winner.json")
    from hwnas.space import Architecture

    a = Architecture.from_dict(w["arch"])
    spent = ledger.total() or {}
    return {"fraction": fraction, "budget_ms": budget_ms, "arch": a.key, "short": a.short,
            "params": int(w.get("params") or a.num_parameters()), "predicted_ms": w.get("latency_ms"),
            "predicted_upper_ms": w.get("latency_upper_ms"), "estimator": w.get("estimator"),
            "search_cpu_s": spent.get("cpu_s"), "folder": str(folder)}


def latency_stage(task: str, teacher: dict[str, Any], winners: list[dict[str, Any]], args,
                  work: Path) -> dict[str, Any]:
    """The teacher and every winner measured together in interleaved rounds (read back when the winners match)."""
    path = work / task / "latency.json"
    archs = sorted({w["arch"] for w in winners})
    if path.is_file():
        rec = read_json(path)
        if rec.get("archs") == archs and rec.get("teacher") == teacher["path"] and not args.remeasure:
            _log(f"{task}: reusing the interleaved latency measurement {path}")
            return rec
        # kept beside the new one, never overwritten: the speed-ups printed before came from it
        stamp = str(rec.get("measured_utc", "earlier")).replace(":", "")
        path.replace(path.with_name(f"latency-{stamp}.json"))
    import torch
    from transformers import AutoModelForSequenceClassification

    from hwnas.distill.export import measure_models
    from hwnas.distill.models import init_student, set_attention
    from hwnas.space import Architecture

    torch.set_num_threads(1)
    t_model = AutoModelForSequenceClassification.from_pretrained(teacher["path"]).eval()
    models = {"teacher": t_model}
    for key in archs:  # the winner's shape with the teacher's vocabulary and head; weights do not change the time
        models[key] = init_student(Architecture.parse(key), t_model.config.num_labels, init="random",
                                   teacher_path=teacher["path"])[0].eval()
    for m in models.values():
        set_attention(m, "sdpa")
    _log(f"{task}: measuring the teacher and {len(archs)} student(s) in interleaved rounds "
         f"(seq {SEQ_LEN}, batch {BATCH_SIZE}, {THREADS} thread, {CLOCK}) ...")
    measured = measure_models(models, seq_len=SEQ_LEN, batch_size=BATCH_SIZE, threads=THREADS, clock=CLOCK)
    rec = {"archs": archs, "teacher": teacher["path"], "clock": CLOCK, "threads": THREADS, "seq_len": SEQ_LEN,
           "batch_size": BATCH_SIZE, "models": measured, "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_json(path, rec)
    return rec


# ------------------------------------------------------------------ distillation
def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a results.jsonl ([] when missing; a torn last line skipped with a warning)."""
    return _ledger.read_jsonl(path)


def find_row(rows: list[dict[str, Any]], task: str, fraction: float, arch: str, seed: int) -> dict[str, Any] | None:
    return next((r for r in rows if (r["task"], float(r["fraction"]), r["arch"], r["seed"]) == (task, fraction, arch, seed)),
                None)


def distill_stage(task: str, winner: dict[str, Any], seed: int, teacher: dict[str, Any], args,
                  work: Path) -> dict[str, Any]:
    """One ``hwnas distill`` of a winner (read back from results.jsonl when finished); its result row."""
    results = work / "results.jsonl"
    fraction, arch = winner["fraction"], winner["arch"]
    rows = read_rows(results)
    row = find_row(rows, task, fraction, arch, seed)
    if row is not None:
        return {**row, "reused": True}
    # two budgets that picked the same student share its runs: the run is the same (architecture, seed and
    # settings), so it is recorded again under this budget rather than distilled twice
    twin = next((r for r in rows if (r["task"], r["arch"], r["seed"]) == (task, arch, seed)), None)
    if twin is not None:
        row = {**twin, "fraction": fraction, "same_run_as_fraction": twin["fraction"],
               "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _ledger.append_jsonl(results, row)
        _ledger.record(args.ledger, row, row_key)
        return {**row, "reused": True}
    train, dev = task_files(task, args, work)
    out = work / "runs" / task / f"1-{fraction:g}" / f"{winner['short']}-s{seed}"
    log = work / "logs" / f"distill-{task}-1-{fraction:g}-{out.name}.log"
    ledger = CpuLedger(work / "cpu" / f"{log.stem}.json")
    cmd = hwnas_cmd(args, "distill", "--arch", arch, "--task", train, "--eval", dev, "--out", str(out),
                    "--recipe", args.recipe, "--seed", str(seed), "--teacher-seed", "0", "--teacher", teacher["path"],
                    "--threads", "1", "--no-measure", "--quiet", "--cache-dir", str(work / "teachers"),
                    "--experience", str(work / "experience.jsonl"))
    for flag, value in (("--limit", args.limit), ("--eval-limit", args.eval_rows), ("--steps", args.steps),
                        ("--batch-size", args.batch_size), ("--lr", args.lr), ("--max-len", args.max_len)):
        if value is not None:
            cmd += [flag, str(value)]
    report = out / "report.json"
    if not report.is_file():
        _log(f"{task} {_flabel(fraction)}: hwnas distill {winner['short']} seed {seed}"
             f"{' (resuming)' if out.is_dir() else ''} ...")
        rc, _, _ = run_logged(cmd, log, ledger)
        if rc != 0 or not report.is_file():
            raise RuntimeError(f"hwnas distill exited {rc} (log {log}):\n{tail(log)}")
    rep = read_json(report)
    spent = ledger.total() or {}
    row = {"task": task, "fraction": fraction, "arch": arch, "seed": seed, "recipe": args.recipe,
           "accuracy": rep["student_score"], "teacher_accuracy": rep["teacher_score"], "kept": rep["retained"],
           "parameters": rep["parameters"], "eval_rows": (rep.get("eval") or {}).get("examples"),
           "steps": _steps(out),
           "cpu_s": spent.get("cpu_s"), "wall_s": spent.get("wall_s"), "cpu_attempts": spent.get("attempts"),
           "cpu_exact": spent.get("exact"), "folder": str(out), "command": shlex.join(cmd[3:]),
           "teacher_sha256": _ledger.weights_sha256(teacher["path"]),
           "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _ledger.append_jsonl(results, row)
    _ledger.record(args.ledger, row, row_key)
    return row


def row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """A run's identity in results.jsonl and in a ledger: task, budget, architecture and seed."""
    return row.get("task"), row.get("fraction"), row.get("arch"), row.get("seed")


def _steps(folder: Path) -> int | None:
    """The distillation steps the run used (its recorded settings: the recipe's, or --steps)."""
    cfg = folder / "distill_config.json"
    data = read_json(cfg) if cfg.is_file() else {}
    return (data.get("config", data) if isinstance(data, dict) else {}).get("steps")


# ------------------------------------------------------------------ figures
def summarise_task(task: str, teacher: dict[str, Any], latency: dict[str, Any], winners: list[dict[str, Any]],
                   rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One task's figures: per fraction the winner, its measured speed-up and its accuracy over seeds."""
    models = latency["models"]
    t_ms = models["teacher"]["latency_ms"]
    lines = []
    for w in winners:
        got = [r for r in rows if r["task"] == task and float(r["fraction"]) == w["fraction"] and r["arch"] == w["arch"]]
        got.sort(key=lambda r: r["seed"])
        acc = [r["accuracy"] for r in got]
        kept = [r["accuracy"] / r["teacher_accuracy"] for r in got]  # the teacher scored in the same run
        cpu = [r["cpu_s"] for r in got if r.get("cpu_s") is not None]
        s = models[w["arch"]]
        lines.append({
            **w, "latency_ms": s["latency_ms"], "latency_p10_ms": s.get("p10_ms"), "latency_p90_ms": s.get("p90_ms"),
            "speedup": t_ms / s["latency_ms"], "seeds": [r["seed"] for r in got], "n": len(got),
            "accuracy_mean": statistics.fmean(acc) if acc else None,
            "accuracy_sd": statistics.stdev(acc) if len(acc) > 1 else None,
            "kept_mean": statistics.fmean(kept) if kept else None, "kept_min": min(kept) if kept else None,
            "cpu_s_mean": statistics.fmean(cpu) if cpu else None,
            "teacher_accuracy_in_runs": sorted({round(r["teacher_accuracy"], 6) for r in got}),
        })
    target = next((x for x in lines if x["fraction"] == TARGET_FRACTION), None)
    return {"task": task, "teacher": teacher, "teacher_latency_ms": t_ms,
            "teacher_latency_p10_ms": models["teacher"].get("p10_ms"),
            "teacher_latency_p90_ms": models["teacher"].get("p90_ms"), "students": lines,
            "target": verdict(target)}


def verdict(line: dict[str, Any] | None) -> dict[str, Any]:
    """Does the 1/4 student keep at least 97% of the teacher (mean over its seeds)?"""
    if line is None:
        return {"met": None, "text": f"no 1/{TARGET_FRACTION:g} student in --fractions: the {KEEP_TARGET:.0%} target "
                                     f"at the {TARGET_FRACTION:g}x speed-up is not checked"}
    if not line["n"]:
        return {"met": None, "text": f"the 1/{TARGET_FRACTION:g} student has no finished run yet"}
    met = line["kept_mean"] >= KEEP_TARGET
    fast = line["speedup"] >= TARGET_FRACTION
    return {"met": met, "speedup_met": fast, "text": (
        f"1/{TARGET_FRACTION:g} student {line['short']}: keeps {line['kept_mean']:.1%} of the teacher, mean over "
        f"{line['n']} seed(s) (worst {line['kept_min']:.1%}) -> {'meets' if met else 'misses'} the {KEEP_TARGET:.0%} "
        f"target; measured speed-up {line['speedup']:.2f}x ({'at least' if fast else 'below'} the "
        f"{TARGET_FRACTION:g}x asked)")}


def _f(x: Any, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def render(results: dict[str, Any]) -> str:
    out = []
    for t in results["tasks"]:
        te = t["teacher"]
        out.append(f"\n{t['task']}: teacher {te['path']}: accuracy {te['accuracy']:.4f} on {te['eval_rows']} rows "
                   f"({te['eval_source']}, {te['max_len']} tokens); latency {t['teacher_latency_ms']:.2f} ms "
                   f"(p10 {_f(t['teacher_latency_p10_ms'], '.2f')}, p90 {_f(t['teacher_latency_p90_ms'], '.2f')}), "
                   f"seq {SEQ_LEN}, batch {BATCH_SIZE}, {THREADS} thread, clock {CLOCK}")
        if te.get("fine_tuned_here"):
            ft = te["fine_tuned_here"]
            out.append(f"  teacher fine-tuned here with hwnas's defaults: {ft.get('steps')} steps, "
                       f"{_f(ft.get('train_s'), '.0f')} s training, {_f(ft.get('cpu_s'), '.0f')} CPU s (last invocation)")
        out.append(f"{'budget':>7} {'architecture':<17} {'params':>11} {'latency ms':>11} {'speed-up':>8} "
                   f"{'accuracy (mean ± sd, n)':>25} {'kept mean':>9} {'kept min':>8} {'CPU s/run':>9}")
        for s in t["students"]:
            acc = "-" if s["accuracy_mean"] is None else (
                f"{s['accuracy_mean']:.4f} ± {_f(s['accuracy_sd'], '.4f')} ({s['n']})")
            out.append(f"{_flabel(s['fraction']):>7} {s['short']:<17} {s['params']:>11,} {s['latency_ms']:>11.2f} "
                       f"{s['speedup']:>7.2f}x {acc:>25} {_f(s['kept_mean'], '>9.1%')} {_f(s['kept_min'], '>8.1%')} "
                       f"{_f(s['cpu_s_mean'], '>9.0f')}")
        out.append(f"  {t['target']['text']}")
        search_cpu = [s["search_cpu_s"] for s in t["students"] if s.get("search_cpu_s") is not None]
        runs_cpu = [s["cpu_s_mean"] * s["n"] for s in t["students"] if s.get("cpu_s_mean") is not None]
        out.append(f"  CPU time: searches {sum(search_cpu):.0f} s, distillations {sum(runs_cpu):.0f} s "
                   f"(this and earlier invocations; the teacher's fine-tuning and the latency measurements not counted)")
    return "\n".join(out)


# ------------------------------------------------------------------ main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder holding sst2/ and agnews/ (../shared/data)")
    ap.add_argument("--work", required=True, help="work folder (teacher records, searches, runs, results.jsonl, lock)")
    ap.add_argument("--tasks", default="sst2,agnews", help=f"comma-separated: {', '.join(TASKS)}")
    ap.add_argument("--teacher-for", action="append", default=[], metavar="TASK=FOLDER",
                    help="a ready fine-tuned teacher for a task (repeatable); otherwise hwnas's defaults fine-tune one")
    ap.add_argument("--predictor", required=True, help="latency predictor bundle (.hwnas) of this CPU, 1 thread")
    ap.add_argument("--space", default="small", help="search space (the predictor's)")
    ap.add_argument("--estimator", default=None, help="hwnas search --estimator [default: the search's default]")
    ap.add_argument("--search-args", default="", help="more hwnas search options, one string")
    ap.add_argument("--fractions", default="3,4,6", help="budgets: teacher latency / each fraction (> 1)")
    ap.add_argument("--budget-basis", choices=("normalised", "measured"), default="normalised",
                    help="teacher latency the fractions are taken of: in the predictor's units (its ratio to a "
                         "reference measured in the same rounds), or the raw measured median")
    ap.add_argument("--recipe", default="default", help="hwnas distill --recipe (a name or a recipe file)")
    ap.add_argument("--seeds", default="0,1,2", help="student seeds")
    ap.add_argument("--steps", type=int, default=None, help="distillation steps [default: the recipe's]")
    ap.add_argument("--batch-size", type=int, default=None, help="[default: the recipe's]")
    ap.add_argument("--lr", type=float, default=None, help="[default: the recipe's]")
    ap.add_argument("--max-len", type=int, default=64, help="tokens per example (students and teacher scoring)")
    ap.add_argument("--limit", type=int, default=None, help="training rows per task [default: all]")
    ap.add_argument("--eval-rows", type=int, default=2000, help="evaluation rows per task (first N)")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--results", default=None,
                    help=f"where the figures are written as JSON [default: {DEFAULT_RESULTS}; with --report-only, "
                         "nowhere unless given]")
    ap.add_argument("--report-only", action="store_true",
                    help="start no distillation: print the figures of the runs already finished (and write them "
                         "to --results when it is given)")
    ap.add_argument("--ledger", default=None, metavar="FILE",
                    help="a committed copy of the finished runs (JSONL): every finished run is also written there, "
                         "and on a fresh --work the runs there whose teacher has the same weights are taken instead "
                         "of run again (bench/_ledger.py)")
    ap.add_argument("--remeasure", action="store_true",
                    help="measure the teacher and the winners again (the earlier measurement is kept as "
                         "<task>/latency-<time>.json), e.g. on a quieter machine")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return _main(args, argv)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"interrupted ({exc}): finished runs are in {Path(args.work) / 'results.jsonl'}; rerun the same "
              "command to resume", file=sys.stderr)
        return 130


def _main(args, argv) -> int:
    check_inputs(args)
    if args.space != (args.loaded_predictor.manifest.get("space") or args.space):
        _log(f"note: the predictor was fitted on space {args.loaded_predictor.manifest.get('space')!r}, "
             f"searching {args.space!r}")
    command = shlex.join(["python", "bench/bench_students.py", *(sys.argv[1:] if argv is None else argv)])
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from hwnas._lock import writer_lock
    from hwnas.errors import HwnasError

    with writer_lock(work / ".lock", target=work, error=BadInput, hint="wait for it to finish, or use another --work"):
        check_settings(args, work)
        _log(f"command: {command}")
        tasks = []
        for task in args.task_list:
            try:
                teacher = teacher_stage(task, args, work)
            except HwnasError as exc:  # e.g. a teacher whose head has another number of classes than the task
                raise BadInput(f"{task}: {exc}") from None
            base = budget_base_ms(teacher, args.budget_basis)
            _log(f"{task}: teacher latency {teacher['latency']['latency_ms']:.2f} ms measured ({CLOCK}), "
                 f"{teacher['normalised_ms']:.2f} ms in the predictor's units (ratio to the reference "
                 f"{teacher['reference']['arch']}), {teacher['predicted_ms']:.2f} ms predicted; budgets are fractions "
                 f"of the {args.budget_basis} figure, {base:.2f} ms")
            if not args.report_only:  # runs finished on another machine with this very teacher
                line = _ledger.say(_ledger.carry_in(args.ledger, work / "results.jsonl", row_key,
                                                    {task: _ledger.weights_sha256(teacher["path"])}), args.ledger)
                if line:
                    _log(f"{task}: {line}")
            winners = [search_stage(task, f, base / f, args, work) for f in args.fraction_list]
            latency = latency_stage(task, teacher, winners, args, work)
            for seed in ([] if args.report_only else args.seed_list):  # seed-major: a partial run covers every budget once
                for w in winners:
                    row = distill_stage(task, w, seed, teacher, args, work)
                    _log(f"{task} {_flabel(w['fraction'])} {w['short']} seed {seed}: accuracy {row['accuracy']:.4f} "
                         f"(teacher {row['teacher_accuracy']:.4f}), {_f(row.get('cpu_s'), '.0f')} CPU s"
                         f"{' (reused)' if row.get('reused') else ''}")
            tasks.append(summarise_task(task, teacher, latency, winners, read_rows(work / "results.jsonl")))
        results = {"command": command, "recipe": args.recipe, "steps": args.steps, "seeds": args.seed_list,
                   "fractions": args.fraction_list, "predictor": args.predictor, "space": args.space,
                   "settings": read_json(work / "settings.json"), "tasks": tasks}
        results_path = args.results or (None if args.report_only else DEFAULT_RESULTS)
        if results_path is not None:  # a look at the figures never overwrites a results file nobody named
            atomic_json(Path(results_path), results)
    print(render(results))
    print(f"\nresults: {results_path or 'not written (--report-only without --results)'}; runs: {work / 'results.jsonl'}")
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
