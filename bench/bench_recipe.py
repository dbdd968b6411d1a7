"""Recipe ablation: each component of a distillation recipe toggled against a base recipe, one student per task.

For every task and seed the base recipe (``--base``, a name of :mod:`hwnas.distill.recipes`)
is run as it is, then once per component with that component toggled (switched off when
the base has it, on when it does not):

* the losses ``logits``, ``hidden``, ``attention``, ``value_relation``, ``mi_alpha`` (weight 1 <-> 0);
* two-stage distillation (task-agnostic steps: half the task steps <-> 0);
* augmentation by word edits, and by masked-LM word replacement (one copy per example <-> none);
* the temperature schedule (T annealed 4 -> 1 <-> constant);
* the layer mapping (``last`` <-> ``uniform``);
* the loss-weight schedule (the base's intermediate-layer losses decayed linearly to weight 0 over
  training, the others kept, as the ``scheduled`` recipe does <-> constant weights); skipped when the
  base has no intermediate-layer loss or nothing but those.

Every run is ``hwnas distill`` in a subprocess (``nice -n 10``, one thread), into
``<work>/runs/<task>/<variant>-s<seed>``; its result is one line of ``<work>/results.jsonl``.
The bench is resumable: finished runs are read back, an unfinished one resumes from its
checkpoint. ``--work`` lives under ``bench/out/`` (not committed): with ``--ledger FILE`` every
finished run is also kept in a committed JSONL file, and a fresh machine takes those runs back
instead of running them again when its teachers (``--teacher-for``) have the very same weights
(``bench/_ledger.py``); ``--report-only`` also prints the ledger's runs. Every run also appends
to the experience table ``<work>/experience.jsonl`` (the AutoDistiller's training data). The task teacher of each task is fine-tuned once
(``--teacher-steps``, or ``--teacher-epochs``; seed 0) and cached in ``<work>/teachers``, or given ready-made
with ``--teacher-for TASK=FOLDER``.

Tasks (``--data`` is the folder of ../shared/data/README.md):

* ``sst2``: the first ``--limit`` rows of sst2/train.tsv; scored on the first ``--eval-rows`` of sst2/dev.tsv;
* ``agnews``: the first ``--limit`` rows of agnews/train.tsv, the last 10% of them held out; with
  ``--agnews-eval tail``, scored instead on the first ``--eval-rows`` of the file's last 10% (the rows a teacher
  fine-tuned by ``hwnas distill`` on the whole file holds out, so such a teacher is not scored on its own training rows);
* ``news``: the news articles' source (:func:`hwnas.distill.tasks.derive_news_source`, written to
  ``<work>/news-source``), the first ``--limit`` training rows, scored on the first ``--eval-rows`` of its dev split;
* ``news-titles``: the same outlets and split from the title and subtitle alone (short texts, ``<work>/news-titles``),
  a fourth task for the experience table: many labels like ``news``, short inputs like ``sst2``.
* ``agnews-biz-tech`` and ``agnews-world-sports``: two AG News topics each (Business against Sci/Tech, which
  share much vocabulary; World against Sports, which share little), cut by
  :func:`hwnas.distill.tasks.derive_label_subset` into ``<work>/<task>`` (a fifth of the rows, by a hash of their
  text, to dev); scored on the first ``--eval-rows`` of its dev split. They share AG News' text, so with AG News
  held out the recommender has seen its corpus, though not its label set.
* ``agnews-world-tech`` and ``agnews-sports-biz``: the same cut with two more pairs, added (stop 22) as fresh tasks
  on which the AutoDistiller's nearest-task check was judged after it had been fixed (docs/distill.md).

    python bench/bench_recipe.py --data ../shared/data --work bench/out/recipe --tasks sst2 \\
        --arch layers=2,hidden=128,heads=2,ffn=512 --steps 200 --lr 3e-4 --limit 2000 --eval-rows 400 --seeds 0

Figures at such a budget (200 steps, 2,000 rows) are smoke-scale: they show the machinery and the
noise, not what each component is worth in a full distillation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import _ledger  # noqa: E402
COMPONENTS = ("logits", "hidden", "attention", "value_relation", "mi_alpha", "two-stage", "augment-edit",
              "augment-mlm", "temperature-schedule", "layer-map", "weight-schedule")
#: The intermediate-layer losses the weight-schedule arm decays.
INTERMEDIATE = ("hidden", "attention", "value_relation", "mi_alpha")


# ------------------------------------------------------------------ tasks and runs (shared with bench_autodistill)
#: Two-topic tasks cut from AG News (hwnas.distill.tasks.derive_label_subset): a confusable pair and an easy one.
PAIR_TASKS = {"agnews-biz-tech": ("Business", "Sci/Tech"), "agnews-world-sports": ("World", "Sports"),
              "agnews-world-tech": ("World", "Sci/Tech"), "agnews-sports-biz": ("Sports", "Business")}
TASKS = ("sst2", "agnews", "news", "news-titles", *PAIR_TASKS)


def task_files(name: str, args) -> tuple[str, str | None, int | None]:
    """``(train file, eval file or None, eval rows or None)`` of a task."""
    data = Path(args.data)
    if name == "sst2":
        return str(data / "sst2/train.tsv"), str(data / "sst2/dev.tsv"), args.eval_rows
    if name == "agnews":
        if getattr(args, "agnews_eval", "holdout") == "tail":
            from hwnas.distill.tasks import split_held_out

            train, dev = split_held_out(data / "agnews/train.tsv", Path(args.work) / "agnews-split")
            return str(train), str(dev), args.eval_rows
        return str(data / "agnews/train.tsv"), None, None
    if name in ("news", "news-titles"):
        from hwnas.distill.tasks import derive_news_source

        folder = Path(args.work) / ("news-source" if name == "news" else "news-titles")
        if not (folder / "dev.tsv").is_file():
            derive_news_source(data / "news/news_articles.csv.gz", folder, chars=600 if name == "news" else 0)
        return str(folder / "train.tsv"), str(folder / "dev.tsv"), args.eval_rows
    if name in PAIR_TASKS:
        from hwnas.distill.tasks import derive_label_subset

        folder = Path(args.work) / name
        derive_label_subset(data / "agnews/train.tsv", folder, PAIR_TASKS[name])
        return str(folder / "train.tsv"), str(folder / "dev.tsv"), args.eval_rows
    raise SystemExit(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")


def common_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--data", required=True, help="folder holding sst2/, agnews/ and news/ (../shared/data)")
    ap.add_argument("--work", required=True, help="output folder (runs, results.jsonl, experience.jsonl)")
    ap.add_argument("--tasks", default="sst2", help=f"comma-separated: {', '.join(TASKS)}")
    ap.add_argument("--agnews-eval", choices=("holdout", "tail"), default="holdout",
                    help="AG News scoring rows: 'holdout' (the last 10%% of the --limit training rows, as hwnas "
                         "distill holds out) or 'tail' (the last 10%% of the whole file, the rows a teacher "
                         "fine-tuned on the whole file by hwnas distill held out; the first --eval-rows of them)")
    ap.add_argument("--arch", default="layers=2,hidden=128,heads=2,ffn=512", help="the student of every run")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=None, help="typed over every recipe's learning rate when given")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--limit", type=int, default=2000, help="training rows per task")
    ap.add_argument("--eval-rows", type=int, default=400)
    ap.add_argument("--teacher-steps", type=int, default=150, help="fine-tuning steps of each task's teacher")
    ap.add_argument("--teacher-epochs", type=int, default=None,
                    help="fine-tune each task's teacher for this many epochs over its --limit rows (best checkpoint "
                         "kept, hwnas distill's --teacher-epochs) instead of --teacher-steps")
    ap.add_argument("--teacher-for", action="append", default=[], metavar="TASK=FOLDER",
                    help="a ready fine-tuned teacher for a task (repeatable)")
    ap.add_argument("--seeds", default="0", help="comma-separated student seeds")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--max-runs", type=int, default=None, help="stop after this many new runs (resume later)")
    ap.add_argument("--ledger", default=None, metavar="FILE",
                    help="a committed copy of the finished runs (JSONL): every finished run is also written there, "
                         "and on a fresh --work the runs there whose teacher has the same weights are taken instead "
                         "of run again (bench/_ledger.py)")


def run_distill(task: str, label: str, seed: int, recipe: str, extra: list[str], args) -> dict[str, Any]:
    """One ``hwnas distill`` run (reused when finished); its result row."""
    work = Path(args.work)
    results = work / "results.jsonl"
    key = {"task": task, "variant": label, "seed": seed}
    out = work / "runs" / task / f"{label}-s{seed}"
    done = finished_row(work, task, label, seed)
    if done is not None:
        return done
    train, evalf, eval_rows = task_files(task, args)
    teachers = dict(t.split("=", 1) for t in args.teacher_for)
    cmd = ["nice", "-n", str(args.nice), sys.executable, "-m", "hwnas.cli.main", "distill", "--arch", args.arch,
           "--task", train, "--limit", str(args.limit), "--out", str(out), "--recipe", recipe,
           "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-len", str(args.max_len),
           "--seed", str(seed), "--teacher-seed", "0", "--threads", "1", "--no-measure", "--quiet",
           "--cache-dir", str(work / "teachers"), "--experience", str(work / "experience.jsonl"), *extra]
    if args.lr is not None:
        cmd += ["--lr", str(args.lr)]
    if task in teachers:
        cmd += ["--teacher", teachers[task]]
    elif getattr(args, "teacher_epochs", None):
        cmd += ["--teacher-epochs", str(args.teacher_epochs)]
    else:
        cmd += ["--teacher-steps", str(args.teacher_steps)]
    if evalf:
        cmd += ["--eval", evalf, "--eval-limit", str(eval_rows)]
    # a folder with a report finished before its row was written (the bench killed in between): hwnas distill
    # returns that report as is, and what the bench measures is the few seconds of reading it back
    finished_before = (out / "report.json").is_file()
    seen = len(_ledger.read_jsonl(work / "experience.jsonl"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(cmd, env=env, capture_output=True, check=False, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{task} {label} seed {seed}: exit {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    rep = json.loads((out / "report.json").read_text())
    experience = _ledger.read_jsonl(work / "experience.jsonl")[seen:]  # the records this run appended
    row = {**key, "recipe": recipe, "extra": extra, "student": rep["student_score"], "teacher": rep["teacher_score"],
           "kept": rep["retained"], "steps": args.steps, "limit": args.limit, "arch": args.arch,
           "teacher_sha256": _ledger.weights_sha256((rep.get("teacher") or {}).get("path")), "experience": experience,
           **cpu_fields((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), time.time() - t0,
                        rep, finished_before),
           "command": shlex.join(cmd[3:]), "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _ledger.append_jsonl(results, row)
    _ledger.record(args.ledger, row, row_key)
    return row


def row_key(row: dict[str, Any]) -> tuple[Any, Any, Any]:
    """A run's identity in results.jsonl and in a ledger: task, variant (or recipe) and seed."""
    return row.get("task"), row.get("variant"), row.get("seed")


def ledger_row(ledger: str | None, key: tuple[Any, Any, Any]) -> dict[str, Any] | None:
    """The ledger's row of a run (``None``: no ledger, or not in it); for figures only, whatever its teacher."""
    if ledger is None:
        return None
    return next((r for r in _ledger.read_jsonl(ledger) if row_key(r) == key), None)


def carry_ledger(args) -> None:
    """Before any run: take ``--ledger``'s finished runs into ``--work`` when their teacher (``--teacher-for``) has
    the same weights here, with the experience records they embed, and copy ``--work``'s runs that the ledger
    lacks into it (:mod:`_ledger`). Without ``--teacher-for`` a task's teacher is fine-tuned by its first run, so
    nothing of that task is carried."""
    if args.ledger is None:
        return
    work = Path(args.work)
    teachers = dict(t.split("=", 1) for t in args.teacher_for)
    shas = {task: _ledger.weights_sha256(folder) for task, folder in teachers.items()}

    def restore(row: dict[str, Any]) -> None:
        for rec in row.get("experience") or []:
            _ledger.append_jsonl(work / "experience.jsonl", rec)

    counts = _ledger.carry_in(args.ledger, work / "results.jsonl", row_key, shas, on_carry=restore)
    line = _ledger.say(counts, args.ledger)
    if line:
        print(line, flush=True)


def finished_row(work: Path, task: str, label: str, seed: int) -> dict[str, Any] | None:
    """The ``results.jsonl`` row of a finished run (CPU audited, :func:`audit_cpu`), or ``None``; starts nothing."""
    key = {"task": task, "variant": label, "seed": seed}
    for row in read_results(work / "results.jsonl"):
        if {k: row.get(k) for k in key} == key:
            return audit_cpu({**row, "reused": True}, work / "runs" / task / f"{label}-s{seed}")
    return None


def _resumed(report: dict[str, Any]) -> int:
    """The latest step a stage of this run resumed from (0: none resumed)."""
    return max([int((stage or {}).get("resumed_from") or 0) for stage in (report.get("training") or {}).values()
                if isinstance(stage, dict)] or [0])


def cpu_fields(cpu_s: float, wall_s: float, report: dict[str, Any], finished_before: bool) -> dict[str, Any]:
    """``cpu_s`` and ``wall_s`` of a row: what the bench measured around the ``hwnas distill`` subprocess, or
    ``None`` (unknown, with ``cpu_note`` saying why) when that is not the run's training: a folder finished
    before this call (only the read-back was measured), or a run resumed from a checkpoint (only the part after
    it was; that part is kept as ``cpu_s_after_resume``). In both cases a report that carries the run's own CPU
    ledger (``cpu_s`` over ``cpu_attempts`` attempts; ``hwnas distill`` writes it since the ledger exists) gives
    the figure instead, from its process clock (without the interpreter's start-up, which the bench's figure has)."""
    if (finished_before or _resumed(report)) and isinstance(report.get("cpu_s"), (int, float)):
        return {"cpu_s": round(float(report["cpu_s"]), 1), "wall_s": None, "cpu_attempts": report.get("cpu_attempts"),
                "cpu_note": "from the run's own CPU ledger (report.json), all its attempts"}
    if finished_before:
        return {"cpu_s": None, "wall_s": None, "cpu_note": "finished before this row was written (the bench was "
                f"stopped in between); its CPU time was not recorded, {cpu_s:.1f} CPU s were spent reading it back"}
    resumed = _resumed(report)
    if resumed:
        return {"cpu_s": None, "wall_s": None, "cpu_s_after_resume": round(cpu_s, 1),
                "cpu_note": f"resumed from step {resumed}; the CPU time before the checkpoint was not recorded"}
    return {"cpu_s": round(cpu_s, 1), "wall_s": round(wall_s, 1)}


def audit_cpu(row: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``row`` with its CPU time marked unknown (:func:`cpu_fields`) when the run's report in ``folder`` shows the
    row was written before that was done: a report whose own wall time exceeds the subprocess's (the row measured
    only a read-back), or one resumed from a checkpoint. Rows written since :func:`cpu_fields` pass unchanged;
    ``results.jsonl`` itself is never rewritten."""
    report_file = folder / "report.json"
    if row.get("cpu_s") is None or row.get("wall_s") is None or not report_file.is_file():
        return row
    report = json.loads(report_file.read_text())
    finished_before = float(report.get("wall_s") or 0) > float(row["wall_s"]) + 1.0
    fields = cpu_fields(float(row["cpu_s"]), float(row["wall_s"]), report, finished_before)
    return {**row, **fields} if "cpu_note" in fields else row


def fmt_cpu(row: dict[str, Any]) -> str:
    """``"72 CPU s"``, or ``"CPU unknown"`` for a row whose CPU time was not recorded (:func:`cpu_fields`)."""
    return "CPU unknown" if row.get("cpu_s") is None else f"{row['cpu_s']:.0f} CPU s"


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of a results.jsonl ([] when missing; a torn last line skipped with a warning)."""
    return _ledger.read_jsonl(path)


def summarise(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f} (1 seed)"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f} ({len(values)} seeds)"


def paired(base: list[dict[str, Any]], variant: list[dict[str, Any]]) -> dict[str, Any]:
    """A variant against the base, seed by seed: the differences of the seeds both ran, their mean and standard
    deviation, the standard error of the mean, and whether the mean lies beyond two standard errors (``clear``;
    ``None`` with fewer than two paired seeds, where seed noise cannot be told apart)."""
    b = {r["seed"]: r["student"] for r in base}
    diffs = [r["student"] - b[r["seed"]] for r in sorted(variant, key=lambda r: r["seed"]) if r["seed"] in b]
    if not diffs:
        return {"n": 0, "diffs": [], "mean": None, "sd": None, "se": None, "clear": None}
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return {"n": 1, "diffs": diffs, "mean": mean, "sd": None, "se": None, "clear": None}
    sd = statistics.stdev(diffs)
    se = sd / len(diffs) ** 0.5
    return {"n": len(diffs), "diffs": diffs, "mean": mean, "sd": sd, "se": se, "clear": abs(mean) > 2 * se}


def fmt_paired(p: dict[str, Any]) -> str:
    """``"+0.0150 ± 0.0100 (3 seeds) clear"``: the paired difference's mean ± its sd over seeds."""
    if p["n"] == 0:
        return "-"
    if p["n"] == 1:
        return f"{p['mean']:+.4f} (1 seed)"
    verdict = "beyond 2 se" if p["clear"] else "within noise"
    return f"{p['mean']:+.4f} ± {p['sd']:.4f} ({p['n']} seeds, {verdict})"


# ------------------------------------------------------------------ the ablation
def variants(base: str, steps: int) -> list[tuple[str, dict[str, Any]]]:
    """``(label, {"losses": LossConfig dict, "agnostic_steps", "augment", "augment_method"})`` per toggled component."""
    from hwnas.distill.losses import LossConfig
    from hwnas.distill.recipes import recipe_settings
    from hwnas.errors import InvalidConfig

    s = recipe_settings(base)
    losses = s["losses"].to_dict()
    plain = {"losses": losses, "agnostic_steps": s["agnostic_steps"], "augment": s["augment"],
             "augment_method": s["augment_method"]}
    out = [("base", plain)]
    for name in COMPONENTS:
        v = json.loads(json.dumps(plain))
        w = v["losses"]["weights"]
        if name in ("logits", "hidden", "attention", "value_relation", "mi_alpha"):
            w[name] = 0.0 if w.get(name, 0) > 0 else 1.0
            if not any(x > 0 for x in w.values()):
                continue
            w = {k: x for k, x in w.items() if x > 0}
            v["losses"]["weights"] = w
            if "weight_schedule" in v["losses"]:  # a base with schedules: a loss switched off loses its schedule
                v["losses"]["weight_schedule"] = {k: x for k, x in v["losses"]["weight_schedule"].items() if k in w}
                if not v["losses"]["weight_schedule"]:
                    v["losses"].pop("weight_schedule")
        elif name == "two-stage":
            v["agnostic_steps"] = 0 if plain["agnostic_steps"] else steps // 2
        elif name == "augment-edit":
            v["augment"], v["augment_method"] = (0, "edit") if plain["augment"] else (1, "edit")
        elif name == "augment-mlm":
            if plain["augment"] and plain["augment_method"] == "mlm":
                v["augment"], v["augment_method"] = 0, "edit"
            else:
                v["augment"], v["augment_method"] = 1, "mlm"
        elif name == "temperature-schedule":
            if v["losses"].get("temperature_end") is not None:
                v["losses"].pop("temperature_end")
            else:
                v["losses"]["temperature"], v["losses"]["temperature_end"] = 4.0, 1.0
        elif name == "layer-map":
            v["losses"]["layer_map"] = "uniform" if v["losses"].get("layer_map", "uniform") != "uniform" else "last"
        elif name == "weight-schedule":
            if v["losses"].get("weight_schedule"):
                v["losses"].pop("weight_schedule")
            else:
                inter = [k for k in INTERMEDIATE if w.get(k, 0) > 0]
                if not inter or not any(x > 0 for k, x in w.items() if k not in inter):
                    continue
                v["losses"]["weight_schedule"] = {k: {"shape": "linear", "end": 0.0} for k in inter}
        try:  # e.g. the logits switched off in a base whose other losses decay to 0: no such recipe
            LossConfig.from_dict(v["losses"])
        except InvalidConfig:
            continue
        out.append((name, v))
    return out


def variant_args(work: Path, label: str, v: dict[str, Any]) -> list[str]:
    loss_file = work / "losses" / f"{label}.json"
    loss_file.parent.mkdir(parents=True, exist_ok=True)
    loss_file.write_text(json.dumps(v["losses"], sort_keys=True))
    return ["--losses", str(loss_file), "--agnostic-steps", str(v["agnostic_steps"]), "--augment", str(v["augment"]),
            "--augment-method", v["augment_method"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap)
    ap.add_argument("--base", default="default", help="the recipe every component is toggled against")
    ap.add_argument("--components", default=",".join(COMPONENTS), help="comma-separated subset to run")
    ap.add_argument("--report-only", action="store_true",
                    help="start no run: print the figures of the runs already finished in --work")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = {"base", *args.components.split(",")}
    print("command:", shlex.join([sys.executable, *sys.argv]) if argv is None else argv, flush=True)
    if not args.report_only:
        carry_ledger(args)
    new = 0
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for task in args.tasks.split(","):
        for label, v in variants(args.base, args.steps):
            if label not in wanted:
                continue
            for seed in seeds:
                if args.max_runs is not None and new >= args.max_runs:
                    break
                if args.report_only:  # the work folder's runs, else the ledger's (e.g. on a fresh machine)
                    row = finished_row(work, task, label, seed) or ledger_row(args.ledger, (task, label, seed))
                    if row is not None:
                        rows.setdefault((task, label), []).append(row)
                    continue
                try:
                    row = run_distill(task, label, seed, args.base, variant_args(work, label, v), args)
                except RuntimeError as exc:
                    print(f"FAILED {exc}", flush=True)
                    continue
                new += not row.get("reused")
                rows.setdefault((task, label), []).append(row)
                print(f"{task} {label:22s} seed {seed}: accuracy {row['student']:.4f} (teacher {row['teacher']:.4f}), "
                      f"{fmt_cpu(row)}{' (reused)' if row.get('reused') else ''}", flush=True)
    print(f"\nrecipe ablation against '{args.base}': student {args.arch}, {args.steps} steps, batch {args.batch_size}, "
          f"{args.limit} training rows, {args.max_len} tokens, seeds {args.seeds}")
    total_cpu, unknown = 0.0, 0
    for task in args.tasks.split(","):
        base = [r["student"] for r in rows.get((task, "base"), [])]
        print(f"\n{task}: teacher {rows.get((task, 'base'), [{}])[0].get('teacher', float('nan')):.4f}")
        print(f"{'variant':32s} {'accuracy':28s} {'vs base, paired by seed (mean ± sd)':44s} {'CPU s, seeds summed':>19s}")
        for label, _ in variants(args.base, args.steps):
            got = rows.get((task, label), [])
            if not got:
                continue
            acc = [r["student"] for r in got]
            cpu = sum(r["cpu_s"] for r in got if r.get("cpu_s") is not None)
            unknown += sum(r.get("cpu_s") is None for r in got)
            total_cpu += cpu
            delta = fmt_paired(paired(rows.get((task, "base"), []), got)) if base and label != "base" else ""
            toggled = "" if label == "base" else " (toggled)"
            print(f"{label + toggled:32s} {summarise(acc):28s} {delta:44s} {cpu:19.0f}")
        if len(base) < 2:
            print("  one seed: differences are within seed noise unless shown otherwise (run more --seeds)")
    print(f"\nCPU time of the runs (this and earlier invocations): {total_cpu:.0f} s"
          + (f" ({unknown} runs' CPU time unknown, not counted)" if unknown else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
