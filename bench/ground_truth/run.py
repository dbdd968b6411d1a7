"""Ground truth for accuracy estimators: real students, each distilled stand-alone.

Every student is distilled by ``hwnas distill`` with one fixed recipe (``RECIPE``
below, the same for every student of a task), scored on fixed held-out rows, and
written as one row of a CSV table. The students are chosen in *latency bands*:
groups whose predicted latency lies within ±2.5% of a band centre, so any two of
a band differ by at most about 5%. Inside a band the shapes are picked to be as
different as possible (deep and narrow against shallow and wide, both head counts,
small and large FFN), because that is where choosing is hard and counting
parameters cannot decide.

The job list, in the order it runs (so a partial table is useful early):

1. SST-2, ``small``: 4 bands x 8 shapes (32 students), round-robin over bands;
2. SST-2, ``tiny``: 3 bands x up to 6 shapes (the space holds only 90);
3. seed repeats: 6 students (3 of ``small``, 3 of ``tiny``) with seeds 1 and 2, one student at a time;
4. AG News, ``small``: the students of 2 of the SST-2 bands (16 students);
5. seeds 1 and 2 of every other ``small`` SST-2 student (29 students, 58 runs), seeds of one
   student back to back, round-robin over bands. It was planned from the pooled noise ceiling
   (about 0.74 with one seed per student, below the issue's goal). Per space the picture differs
   (``bench_estimators.py`` prints both since 30 Nov 2026): ``small`` students vary by 0.2 points
   across seeds and the one-seed ceiling of ``small`` bands is about 0.81, above the goal; the low
   pooled figure comes from one bimodal ``tiny`` student. So this stage is not what the goal
   waits for on ``small``. It also needs the table's own teacher: the cached one was lost with
   its machine, and one fine-tuned again scores otherwise (see ``teacher_mismatch``). 9 of its
   58 runs were done with the table's teacher.

Run (resumable: finished students are skipped; a killed student resumes from
its last checkpoint, because ``hwnas distill`` resumes an unfinished folder)::

    python bench/ground_truth/run.py --data /path/to/shared/data \\
        --predictor-small bench/results/cpu-small.hwnas \\
        --predictor-tiny bench/ground_truth/cpu-tiny.hwnas \\
        --work bench/out/ground_truth --table bench/ground_truth/table.csv

Every student of a task learns from one teacher, fine-tuned by the task's first student and cached
in ``<work>/teachers``. On a fresh machine that cache is gone, and a teacher fine-tuned again may
not be the same one (before 30 Nov 2026 its head's start depended on the process); a student whose
teacher scores otherwise than the table's teacher on the evaluation rows is therefore not added:
the run says so and exits 2 (``teacher_mismatch``).

``--plan-only`` prints the plan (bands, shapes, predicted latency) and exits.
One runner at a time (the table is guarded by a lock file next to it); ``--workers 2`` runs
two students at once inside it, each a one-thread process.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

#: The one recipe. Changing it invalidates the table: bump RECIPE_ID.
RECIPE_ID = "gt-v1"
RECIPE = {
    "init": "teacher",            # stand-alone: leading layers/units of the fine-tuned teacher
    # logits + hidden + attention, weight 1 each, with the hidden loss's projection started at random as it
    # was when the table began (hwnas now starts it aligned by default; see docs/distill.md)
    "losses": str(Path(__file__).with_name("losses-gt-v1.json")),
    "steps": 500,
    "batch_size": 32,
    "lr": 1e-4,
    "max_len": 64,
    "teacher_steps": 600,
    "augment": 0,
}
TASKS = {
    # name: (training file, evaluation file or None, eval rows). SST-2 is scored on the first
    # 2,000 rows of sst2/dev.tsv (the rest of GLUE's SST-2 train split, never trained on);
    # AG News has no separate split here, so hwnas holds out the last 10% of its file (at most 1,000 rows).
    "sst2": ("sst2/train.tsv", "sst2/dev.tsv", 2000),
    "agnews": ("agnews/train.tsv", None, None),
}
FIELDS = ["arch", "layers", "hidden", "heads", "ffn", "space", "band", "task", "seed", "recipe", "steps",
          "accuracy", "teacher_accuracy", "eval_rows", "parameters", "cpu_s", "wall_s",
          "predicted_ms", "measured_ms", "teacher_measured_ms", "measured_ratio", "finished_utc"]


@dataclass(frozen=True)
class Job:
    arch: str
    space: str
    band: str
    task: str
    seed: int
    predicted_ms: float

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.arch, self.task, self.seed)

    @property
    def folder(self) -> str:
        return f"{self.task}/{self.arch}-s{self.seed}"


def _diverse(cands: list, n: int) -> list:
    """Greedy farthest-point choice of ``n`` shapes (normalised layers, hidden, heads, ffn)."""
    X = np.array([[a.layers, a.hidden, a.heads, a.ffn] for a in cands], dtype=float)
    X = (X - X.min(0)) / np.maximum(X.max(0) - X.min(0), 1e-9)
    chosen = [int(np.argmax(X[:, 0] - 0.01 * X[:, 1]))]  # the deepest (and narrowest of those) first
    while len(chosen) < min(n, len(cands)):
        d = np.min(np.linalg.norm(X[:, None, :] - X[chosen][None, :, :], axis=2), axis=1)
        d[chosen] = -1
        chosen.append(int(np.argmax(d)))
    return [cands[i] for i in chosen]


def plan_bands(space_name: str, predictor_path: str, n_bands: int, per_band: int,
               quantiles: tuple[float, ...]) -> list[tuple[str, float, list]]:
    """Bands of ``per_band`` diverse shapes, centred at quantiles of the space's predicted latency."""
    from hwnas.predictors.bundle import load_bundle
    from hwnas.space import get_space

    space = get_space(space_name)
    archs = space.enumerate()
    pred = load_bundle(predictor_path).predict(archs, seq_len=128, batch_size=1)
    order = np.argsort(pred)
    bands = []
    for q in quantiles[:n_bands]:
        # the centre with the most distinct layer counts inside ±2.5%, near the quantile
        base = float(pred[order[int(q * (len(order) - 1))]])
        best = None
        for c in np.linspace(base * 0.9, base * 1.1, 41):
            inside = [a for a, p in zip(archs, pred, strict=True) if abs(p / c - 1) <= 0.025]
            score = (len({a.layers for a in inside}), len(inside))
            if best is None or score > best[0]:
                best = (score, c, inside)
        _, centre, inside = best
        picked = _diverse(inside, per_band)
        lat = {a.key: float(p) for a, p in zip(archs, pred, strict=True)}
        bands.append((f"{space_name}-{centre:.2f}ms", centre, [(a, lat[a.key]) for a in picked]))
    return bands


def build_jobs(args) -> list[Job]:
    small = plan_bands("small", args.predictor_small, 4, 8, (0.15, 0.4, 0.65, 0.88))
    tiny = plan_bands("tiny", args.predictor_tiny, 3, 6, (0.2, 0.5, 0.8))
    jobs: list[Job] = []

    def round_robin(bands, space, task, seed):
        out = []
        for i in range(max(len(b[2]) for b in bands)):
            for name, _, members in bands:
                if i < len(members):
                    a, p = members[i]
                    out.append(Job(a.key, space, name, task, seed, p))
        return out

    jobs += round_robin(small, "small", "sst2", 0)
    jobs += round_robin(tiny, "tiny", "sst2", 0)
    repeats = [j for j in jobs if j.space == "small"][:3] + [j for j in jobs if j.space == "tiny"][:3]
    # seeds 1 and 2 of one student run back to back, so a partial table already states its noise
    jobs += [Job(j.arch, j.space, j.band, j.task, seed, j.predicted_ms) for j in repeats for seed in (1, 2)]
    jobs += round_robin(small[1:3], "small", "agnews", 0)
    repeated = {j.arch for j in repeats}
    jobs += [Job(j.arch, j.space, j.band, j.task, seed, j.predicted_ms)
             for j in round_robin(small, "small", "sst2", 0) if j.arch not in repeated for seed in (1, 2)]
    return jobs


def read_table(path: Path) -> dict[tuple[str, str, int], dict]:
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {(r["arch"], r["task"], int(r["seed"])): r for r in rows}


def write_table(path: Path, rows: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows.values():
            w.writerow({k: r.get(k, "") for k in FIELDS})
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_job(job: Job, args) -> dict:
    train, evalf, eval_rows = TASKS[job.task]
    out = Path(args.work) / "students" / job.folder
    cmd = [sys.executable, "-m", "hwnas.cli.main", "distill", "--arch", job.arch,
           "--task", str(Path(args.data) / train), "--out", str(out),
           "--cache-dir", str(Path(args.work) / "teachers"),
           "--init", RECIPE["init"], "--losses", RECIPE["losses"], "--steps", str(RECIPE["steps"]),
           "--batch-size", str(RECIPE["batch_size"]), "--lr", str(RECIPE["lr"]),
           "--max-len", str(RECIPE["max_len"]), "--teacher-steps", str(RECIPE["teacher_steps"]),
           "--augment", str(RECIPE["augment"]), "--seed", str(job.seed), "--threads", "1",
           "--predictor", args.predictor_small if job.space == "small" else args.predictor_tiny, "--quiet"]
    if evalf:
        cmd += ["--eval", str(Path(args.data) / evalf), "--eval-limit", str(eval_rows)]
    if job.seed != 0:  # seed repeats vary the student only: every seed shares the seed-0 teacher
        cmd += ["--teacher-seed", "0"]
    t0 = time.time()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.train_threads))
    log = Path(args.work) / "logs" / (job.folder.replace("/", "_") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, text=True)
        # wait4 gives this child's own CPU time; RUSAGE_CHILDREN would mix in the other workers' students
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{job.arch} {job.task} seed {job.seed}: hwnas distill exited {proc.returncode}:\n"
                           f"{log.read_text(encoding='utf-8')[-2000:]}")
    rep = json.loads((out / "report.json").read_text(encoding="utf-8"))
    meas = rep.get("measured_latency") or {}
    a = rep["arch"] if isinstance(rep.get("arch"), dict) else None
    from hwnas.space import Architecture

    arch = Architecture.parse(job.arch) if a is None else Architecture.from_dict(a)
    s_ms = meas.get("student", {}).get("latency_ms")
    t_ms = meas.get("teacher", {}).get("latency_ms")
    return {
        "arch": job.arch, "layers": arch.layers, "hidden": arch.hidden, "heads": arch.heads, "ffn": arch.ffn,
        "space": job.space, "band": job.band, "task": job.task, "seed": job.seed, "recipe": RECIPE_ID,
        "steps": RECIPE["steps"], "accuracy": f"{rep['student_score']:.5f}",
        "teacher_accuracy": f"{rep['teacher_score']:.5f}" if rep.get("teacher_score") is not None else "",
        "eval_rows": (rep.get("eval") or {}).get("examples", ""), "parameters": rep.get("parameters", ""),
        # CPU time of this student's process (user + system), including the teacher's fine-tuning
        # the first time a task is seen (then cached), as the cpu_s of that row shows.
        "cpu_s": f"{usage.ru_utime + usage.ru_stime:.1f}",
        "wall_s": f"{wall:.1f}", "predicted_ms": f"{job.predicted_ms:.3f}",
        "measured_ms": f"{s_ms:.3f}" if s_ms else "", "teacher_measured_ms": f"{t_ms:.3f}" if t_ms else "",
        "measured_ratio": f"{s_ms / t_ms:.4f}" if s_ms and t_ms else "",
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def teacher_mismatch(rows: dict, row: dict) -> str | None:
    """Why a finished student may not join the table, or ``None``: the table's students of a task all learnt
    from one teacher (seed repeats vary the student only), and a teacher fine-tuned again (a fresh machine, the
    old cache gone) may not be that one. Teachers are compared by their score on the task's evaluation rows."""
    before = {r["teacher_accuracy"] for r in rows.values() if r["task"] == row["task"] and r.get("teacher_accuracy")}
    if not before or row.get("teacher_accuracy") in before:
        return None
    return (f"{row['task']}: this run's teacher scored {row['teacher_accuracy']} on the evaluation rows, the table's "
            f"{row['task']} students learnt from a teacher that scored {', '.join(sorted(before))}: the cached teacher "
            f"in {{work}}/teachers is another one (fine-tuned again?), so its students would not be comparable with "
            f"the table's. The student was not added; restore the table's teacher into {{work}}/teachers, or start a "
            f"new table (--table) for this teacher")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder holding sst2/ and agnews/")
    ap.add_argument("--predictor-small", default=str(ROOT / "bench/results/cpu-small.hwnas"))
    ap.add_argument("--predictor-tiny", default=str(ROOT / "bench/ground_truth/cpu-tiny.hwnas"))
    ap.add_argument("--work", default=str(ROOT / "bench/out/ground_truth"))
    ap.add_argument("--table", default=str(ROOT / "bench/ground_truth/table.csv"))
    ap.add_argument("--train-threads", type=int, default=1)
    ap.add_argument("--max-jobs", type=int, default=None, help="stop after this many new students")
    ap.add_argument("--workers", type=int, default=1,
                    help="students distilled at once, each a 1-thread process (default 1)")
    ap.add_argument("--plan-only", action="store_true")
    args = ap.parse_args(argv)
    if not 1 <= args.workers <= (os.cpu_count() or 1):
        ap.error(f"--workers must be between 1 and the number of CPUs ({os.cpu_count()}), got {args.workers}")

    jobs = build_jobs(args)
    if args.plan_only:
        for j in jobs:
            print(f"{j.task:7s} {j.space:6s} {j.band:18s} seed {j.seed} {j.arch:28s} {j.predicted_ms:7.3f} ms")
        print(f"{len(jobs)} students")
        return 0
    table = Path(args.table)
    table.parent.mkdir(parents=True, exist_ok=True)
    with open(table.with_name(table.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"error: another ground-truth run holds {lock.name}", file=sys.stderr)
            return 2
        return _run(jobs, table, args)  # the lock is held until every student has finished


def _run(jobs: list[Job], table: Path, args) -> int:
    rows = read_table(table)
    todo = [j for j in jobs if j.key not in rows]
    print(f"{len(jobs)} students planned, {len(jobs) - len(todo)} in {table}, {len(todo)} to go"
          f" ({args.workers} at a time)", flush=True)
    # Students run as ``--workers`` concurrent ``hwnas distill`` processes, and this one process is
    # the table's only writer. A task's teacher is fine-tuned (then cached) by its first student, so
    # no second student of a task starts until one of that task has finished.
    taught = {r["task"] for r in rows.values()}
    pending, running, started, refused = list(todo), {}, 0, False
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        while pending or running:
            while len(running) < args.workers and pending and (args.max_jobs is None or started < args.max_jobs):
                busy = {j.task for j, _ in running.values()}
                pick = next((j for j in pending if j.task in taught or j.task not in busy), None)
                if pick is None:
                    break
                pending.remove(pick)
                running[pool.submit(run_job, pick, args)] = (pick, time.time())
                started += 1
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                j, t0 = running.pop(fut)
                try:
                    row = fut.result()
                except RuntimeError as e:  # one broken student must not stop the table
                    print(f"FAILED {e}", flush=True)
                    continue
                problem = teacher_mismatch(rows, row)
                if problem:
                    print(f"error: {problem.format(work=args.work)} (student {j.arch} seed {j.seed}, accuracy "
                          f"{row['accuracy']}, kept in {Path(args.work) / 'students' / j.folder})", file=sys.stderr,
                          flush=True)
                    pending.clear()  # nothing more starts; students already running finish and are checked too
                    refused = True
                    continue
                rows[j.key] = row
                write_table(table, rows)
                taught.add(j.task)
                print(f"[{len(rows)}/{len(jobs)}] {j.task} {j.arch} seed {j.seed}: accuracy {row['accuracy']} "
                      f"(teacher {row['teacher_accuracy']}), predicted {row['predicted_ms']} ms, "
                      f"{time.time() - t0:.0f} s", flush=True)
    return 2 if refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
