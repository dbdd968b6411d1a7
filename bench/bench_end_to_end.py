"""End to end: does ``hwnas search`` beat "the largest student under the budget"?

For every latency budget this benchmark does what a user would do, with the project's own
commands in subprocesses:

1. ``hwnas search --estimator NAME --max-latency B`` finds the searched winner (arm ``searched``);
2. the baseline (arm ``largest-params``) is the architecture of the space with the largest
   parameter count (embeddings and encoder, :meth:`Architecture.num_parameters`) that is
   feasible under the *same rule the search uses*: the predictor's calibrated **upper bound**
   (``predict_upper``, seq 128, batch 1) is at most the budget (:class:`hwnas.search.SearchProblem`);
   ties go to the lower predicted latency. Extra constraints passed to the search through
   ``--search-args`` (``--max-params``, ``--max-memory``) are not applied to the baseline;
3. each arm is distilled with ``hwnas distill --recipe NAME`` once per seed (one thread, ``nice``),
   every run in its own folder, and its held-out accuracy and measured latency are read from the
   run's ``report.json``.

Budgets are milliseconds (``5ms,10ms``) or fractions of the teacher's latency (``1/3,1/4,1/6``).
The teacher's latency is measured once, before anything else, through the project's measuring
path (:func:`hwnas.search.verify.measure_student`: the device registry, interleaved rounds, the
predictor's device settings: one thread, seq 128, batch 1) and recorded in ``<out>/teacher_latency.json``;
a rerun reuses it, so a resumed run keeps its budgets. A fraction is taken of the
**drift-normalised** teacher latency (the teacher's per-round ratio to the predictor's reference
architecture times the reference's latency at profiling time), because the budget is compared with
the predictor's upper bound, which is in profiling-time units; on a busy machine the raw median is
inflated and would make every budget too loose. ``--teacher-latency raw`` uses the raw median,
``--teacher-ms X`` a figure measured elsewhere (a quiet machine). Both are printed.

Resumable: a search folder whose ``config.json`` says ``done`` is reused, an unfinished one is
continued (``--resume``); a distillation folder with ``report.json`` is reused, an unfinished one is
continued (``hwnas distill`` resumes an unfinished ``--out`` with the same settings). The results
JSON is rewritten atomically after every search and every distillation. The CPU time of each search and
distillation is kept attempt by attempt in ``<out>/cpu/<its log name>.json`` (:class:`CpuLedger`): a run
whose child failed or was killed, or whose runner was stopped (SIGTERM, Ctrl-C: the child is stopped and
its exact CPU time recorded, exit 130) or killed outright (the last sample, at most ``SAMPLE_S`` seconds
old, stands), carries that CPU time into the resumed attempt, and the figures print the sum. One runner at a time:
``<out>/.lock`` is held with ``flock``; a second runner stops with one line (exit 2). Bad input
(an unknown arm or estimator or recipe, a budget that does not parse, a budget under which no
architecture of the space is feasible) is one line and exit 2 before any training.
``--report-only`` prints the figures of an existing results JSON; ``--plan-only`` prints each budget and its
largest-params baseline without searching or training.

Every distillation gets ``--teacher-seed 0`` (the seeds vary the student only; all seeds share one
task teacher) and ``--cache-dir <teacher-cache>``. With ``--recipe gt-v1`` the teacher is fine-tuned
for 600 steps (the recipe sets ``--teacher-steps``, so the newer ``--teacher-epochs 1`` default does
not apply), batch 32, 64 tokens, seed 0: on sst2/train.tsv its cache key is ``8773d96bdb6f01ed``, the
ground-truth table's teacher (0.9035 on the 2,000 evaluation rows), so
``--teacher-cache bench/out/ground_truth/teachers`` reuses it instead of fine-tuning again
(about 30 minutes). A recipe that fine-tunes by epochs (``default``: one epoch, 1,894 steps on
SST-2, key ``177c7f9428d4a646``) trains its own teacher the first time (about 90 minutes on 2 shared
cores) and caches it in the same folder.

Real command lines (``--data`` stands for the shared data folder, ../shared/data):

(a) issue 12, end to end: SST-2, space ``small``, three budgets, the searched winner (estimator given
    by ``--estimator``) against the largest student, recipe gt-v1, three seeds::

        nice -n 10 python bench/bench_end_to_end.py \\
            --task ../shared/data/sst2/train.tsv --eval ../shared/data/sst2/dev.tsv --eval-limit 2000 \\
            --teacher-cache bench/out/ground_truth/teachers --predictor bench/results/cpu-small.hwnas \\
            --space small --budgets 9.5ms,13.5ms,17.5ms --estimator attn-confidence \\
            --recipe gt-v1 --seeds 0,1,2 --arms searched,largest-params \\
            --out bench/out/end_to_end/sst2-gt-v1 --results bench/results/end_to_end-sst2-gt-v1.json

    (the budgets are three of the ground-truth table's latency bands; ``--estimator task-proxy`` or
    ``--estimator supernet-loss --supernet FOLDER`` work the same way, with ``--search-args`` for
    anything else ``hwnas search`` takes, e.g. ``--search-args "--evaluations 32 --screen params"``).

(b) issue 14, students at 1/3, 1/4 and 1/6 of the teacher's measured latency, the best recipe, three
    seeds, on SST-2 and on AG News (AG News has no separate split: hwnas holds out the last 10%)::

        nice -n 10 python bench/bench_end_to_end.py \\
            --task ../shared/data/sst2/train.tsv --eval ../shared/data/sst2/dev.tsv --eval-limit 2000 \\
            --teacher-cache bench/out/teachers --predictor bench/results/cpu-small.hwnas --space small \\
            --budgets 1/3,1/4,1/6 --estimator attn-confidence --recipe BEST --seeds 0,1,2 --arms searched \\
            --out bench/out/end_to_end/sst2-best --results bench/results/end_to_end-sst2-best.json
        nice -n 10 python bench/bench_end_to_end.py --task ../shared/data/agnews/train.tsv \\
            --teacher-cache bench/out/teachers --predictor bench/results/cpu-small.hwnas --space small \\
            --budgets 1/3,1/4,1/6 --estimator attn-confidence --recipe BEST --seeds 0,1,2 --arms searched \\
            --out bench/out/end_to_end/agnews-best --results bench/results/end_to_end-agnews-best.json

    (``BEST``: the recipe the recipe ablation, bench/bench_recipe.py, finds best; add
    ``largest-params`` to ``--arms`` to see the baseline beside it).

CPU cost, estimated from the ground-truth table (bench/ground_truth/table.csv, column ``cpu_s``: one
``hwnas distill`` process, 1 thread, recipe gt-v1 on SST-2, 500 steps, training, export and latency
measurement; 36 rows when this was written): the 31 ``small`` students that reused the cached teacher
took 224-502 s, median about 370 s; the first one, which also fine-tuned the 600-step teacher, 922 s.
So:

* (a) 3 budgets x 2 arms x 3 seeds = 18 distillations, about 18 x 370 s = 1.9 CPU hours (fewer when
  the searched winner is the largest student: the arms then share their runs), plus the searches:
  the estimator's cost per architecture times ``--evaluations`` (64 by default; ``params``/``flops``:
  nothing; ``attn-confidence``/``wpca``: seconds; ``task-proxy``: tens of seconds to minutes) and BO's
  own overhead (on the loaded 2-core machine roughly 15 s per evaluation, so 64 evaluations take of the
  order of 15 minutes per budget; ``--search-args "--evaluations 32"`` halves it);
* (b) 3 budgets x 3 seeds = 9 distillations per task, about 0.9 CPU hours at gt-v1's 500 steps, plus
  the teacher's latency measurement (a minute or two) and the searches as above (a
  recipe with more steps or augmentation costs proportionally more), plus the one-epoch teacher of
  each task the first time (about 1.5 hours on SST-2; AG News' 9,991 rows, 10% held out: about 280 steps,
  a sixth of that).
  Students at 1/6 of the teacher are smaller and cheaper than the median above, those at 1/3 dearer.
  Wall time on the shared 2-core machine was 1-9x the CPU time, depending on the load.

Smoke run at toy scale (bench/results/bench_end_to_end-smoke.txt shows its output): space ``tiny``,
estimator ``params`` (random search over the whole feasible set, so the winner has the largest
parameter count; the head count does not change it, and the search may break that tie otherwise than
the baseline's lower-latency rule: one attempt gave L3-H192-A4-I640 against L3-H192-A2-I640), one budget, one seed (then a second, killed and resumed), 20 distillation steps on
200 rows and a 10-step throwaway teacher::

    nice -n 10 python bench/bench_end_to_end.py --task ../shared/data/sst2/train.tsv \\
        --eval ../shared/data/sst2/dev.tsv --eval-limit 100 --teacher-cache /tmp/e2e-teachers \\
        --predictor bench/ground_truth/cpu-tiny.hwnas --space tiny --budgets 1/6 --estimator params \\
        --search-args "--strategy random --evaluations 90" --recipe gt-v1 --seeds 0 \\
        --arms searched,largest-params --teacher-timing quick \\
        --distill-args "--steps 20 --limit 200 --teacher-steps 10 --max-len 32 --batch-size 8" \\
        --out /tmp/e2e-smoke --results /tmp/e2e-smoke/results.json

What the figures mean: accuracies hold for the recipe and steps the run used (printed with the
figures); with a few hundred distillation steps the ranking of two students may differ from the
ranking after a full distillation. Measured latencies on the shared machine drift (see
../shared/MEASURING.md); the ratio to the teacher is measured in the same interleaved rounds as the
student (one ``hwnas distill`` measurement) and is the figure to trust across runs.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("searched", "largest-params")
SEQ_LEN, BATCH_SIZE = 128, 1
#: Settings that must not change when a run is resumed into the same --out (they change what a run means).
FIXED = ("task", "eval", "eval_limit", "teacher", "predictor", "space", "recipe", "distill_args")


class BadInput(Exception):
    """One line for the user; exit code 2."""


# ------------------------------------------------------------------ parsing
@dataclass(frozen=True)
class Budget:
    label: str                      # "1/4" or "10ms" as typed (normalised)
    fraction: Fraction | None       # of the teacher's latency, or None for milliseconds
    ms: float | None                # the budget in ms when given in ms

    @property
    def folder(self) -> str:
        return self.label.replace("/", "of").replace(".", "p")


def parse_budgets(text: str) -> list[Budget]:
    """``"1/3,1/4"`` (fractions of the teacher's latency) or ``"5ms,10ms"`` (a bare number is ms)."""
    out: list[Budget] = []
    for part in (p.strip() for p in str(text).split(",")):
        m = re.fullmatch(r"(\d+)\s*/\s*(\d+)", part)
        if m:
            num, den = int(m.group(1)), int(m.group(2))
            if num <= 0 or den <= 0 or num >= den:
                raise BadInput(f"--budgets: fraction {part!r} must lie strictly between 0 and 1 (e.g. 1/4)")
            out.append(Budget(f"{num}/{den}", Fraction(num, den), None))
            continue
        from hwnas.cli._common import parse_latency_ms
        from hwnas.errors import InvalidConfig

        try:
            ms = parse_latency_ms(part, what="--budgets")
        except InvalidConfig:
            raise BadInput(f"--budgets: cannot read {part!r}; give milliseconds (5ms, 800us, 0.01s) or fractions of "
                           f"the teacher's measured latency (1/3, 1/4), comma-separated") from None
        out.append(Budget(f"{ms:g}ms", None, ms))
    if len({b.label for b in out}) != len(out):
        raise BadInput(f"--budgets: a budget is repeated in {text!r}")
    return out


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",")]
    except ValueError:
        raise BadInput(f"--seeds must be comma-separated integers >= 0 (e.g. 0,1,2); got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise BadInput(f"--seeds must be distinct integers >= 0 (e.g. 0,1,2); got {text!r}")
    return seeds


def parse_arms(text: str) -> list[str]:
    arms = [a.strip() for a in str(text).split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms or len(set(arms)) != len(arms):
        raise BadInput(f"--arms: unknown or repeated arm {(bad or [text])[0]!r}; arms are: {', '.join(ARMS)}")
    return arms


def check_inputs(args) -> None:
    """Everything that can be refused before the teacher is measured or anything is trained."""
    from hwnas.distill.recipes import AUTO, get_recipe
    from hwnas.errors import HwnasError

    for flag, path in (("--task", args.task), ("--eval", args.eval), ("--predictor", args.predictor)):
        if path is not None and not Path(path).is_file():
            raise BadInput(f"{flag} {path} is not a file")
    if args.eval_limit is not None and args.eval_limit < 1:
        raise BadInput(f"--eval-limit must be an integer >= 1; got {args.eval_limit}")
    if "searched" in args.arm_list:
        from hwnas.estimators import ESTIMATORS

        if args.estimator is None:
            raise BadInput(f"--estimator is needed for the searched arm; estimators: {', '.join(ESTIMATORS.names())}")
        if args.estimator not in ESTIMATORS.names():
            raise BadInput(f"--estimator: unknown estimator {args.estimator!r}; known: {', '.join(ESTIMATORS.names())}")
    if args.recipe != AUTO:
        try:
            get_recipe(args.recipe)
        except HwnasError as exc:
            raise BadInput(f"--recipe: {exc}") from None
    for flag, text in (("--search-args", args.search_args), ("--distill-args", args.distill_args)):
        try:
            shlex.split(text)
        except ValueError as exc:
            raise BadInput(f"{flag}: cannot split {text!r}: {exc}") from None
    if args.teacher_ms is not None and not (args.teacher_ms > 0 and math.isfinite(args.teacher_ms)):
        raise BadInput(f"--teacher-ms must be a positive number of milliseconds; got {args.teacher_ms}")


# ------------------------------------------------------------------ files
def atomic_json(path: Path, data: Any) -> None:
    from hwnas._files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def hwnas_cmd(args, *words: str) -> list[str]:
    return ["nice", "-n", str(args.nice), sys.executable, "-m", "hwnas.cli.main", *words]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when this runner dies, so a killed runner leaves no orphan holding a folder."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Interrupted(Exception):
    """The runner got SIGTERM or SIGINT while a child ran; the child was stopped and its CPU time recorded."""


#: Seconds between samples of a running child's CPU time in its ledger (what a SIGKILLed runner can lose at most).
SAMPLE_S = 10.0
_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_cpu_s(pid: int) -> float | None:
    """CPU seconds of a live child so far: its own user + system time and that of its reaped children, as
    :func:`os.wait4` reports once it ends (``/proc/PID/stat`` fields 14-17); None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = text[text.rindex(")") + 2:].split()  # fields from 3 on; the name in (...) may hold spaces
    return sum(int(x) for x in f[11:15]) / _TICKS


class CpuLedger:
    """The CPU time of one run (a search or a distillation), attempt by attempt, in a small JSON sidecar.

    A run may take several attempts: a child that fails or is killed, a runner that is stopped or killed,
    each followed by a resumed attempt that builds on the work before it. Every attempt is one entry
    ``{"started_utc", "pid", "cpu_s", "wall_s", "status", "exact"}``; the run's CPU time is the sum.
    While an attempt runs, its entry is rewritten every :data:`SAMPLE_S` seconds with the child's CPU time
    so far (``status: running``, ``exact: false``); when the child ends, with :func:`os.wait4`'s exact
    figure (``exited`` and its exit code, or ``interrupted`` when this runner stopped it). An entry still
    ``running`` when the next attempt starts belonged to a runner that was killed outright (SIGKILL): it
    becomes ``runner killed`` and keeps its last sample, so at most :data:`SAMPLE_S` CPU seconds of it are
    lost. Delete the sidecar together with the run's folder to start a run's accounting over.
    """

    FORMAT = "bench_end_to_end-cpu"

    def __init__(self, path: Path) -> None:
        self.path = path

    def attempts(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        try:
            data = read_json(self.path)
        except (OSError, ValueError) as exc:
            raise BadInput(f"{self.path} is not a CPU ledger ({exc}); move it away to resume without it") from None
        if not isinstance(data, dict) or data.get("format") != self.FORMAT or not isinstance(data.get("attempts"), list):
            raise BadInput(f"{self.path} is not a CPU ledger (format {self.FORMAT!r}); move it away to resume without it")
        return data["attempts"]

    def _write(self, attempts: list[dict[str, Any]]) -> None:
        atomic_json(self.path, {"format": self.FORMAT, "attempts": attempts})

    def start(self, pid: int) -> list[dict[str, Any]]:
        """Close attempts left ``running`` by a killed runner and open one for ``pid``; the list to update."""
        attempts = self.attempts()
        for a in attempts:
            if a.get("status") == "running":
                a["status"] = "runner killed"
        attempts.append({"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pid": pid,
                         "cpu_s": 0.0, "wall_s": 0.0, "status": "running", "exact": False})
        self._write(attempts)
        return attempts

    def update(self, attempts: list[dict[str, Any]], **fields: Any) -> None:
        attempts[-1].update(fields)
        self._write(attempts)

    def total(self) -> dict[str, Any] | None:
        """``{"cpu_s", "wall_s", "attempts", "exact"}`` summed over the attempts; None when none was recorded."""
        attempts = self.attempts()
        if not attempts:
            return None
        return {"cpu_s": sum(float(a.get("cpu_s") or 0.0) for a in attempts),
                "wall_s": sum(float(a.get("wall_s") or 0.0) for a in attempts), "attempts": len(attempts),
                "exact": all(a.get("exact") for a in attempts)}


def ledger_for(out: Path, log: Path) -> CpuLedger:
    """The CPU ledger of the run whose log is ``log`` (``<out>/cpu/<log name>.json``)."""
    return CpuLedger(out / "cpu" / f"{log.stem}.json")


def run_logged(cmd: list[str], log: Path, ledger: CpuLedger | None = None,
               sample_s: float | None = None) -> tuple[int, float, float]:
    """Run ``cmd`` with its output in ``log``; ``(exit code, CPU seconds of that child, wall seconds)``.

    With ``ledger``, the attempt is recorded there as it runs (:class:`CpuLedger`). SIGTERM or SIGINT to
    this runner stops the child, records its exact CPU time and raises :class:`Interrupted`. ``sample_s``:
    seconds between samples of the running child (default :data:`SAMPLE_S`).
    """
    import select
    import threading

    sample_s = SAMPLE_S if sample_s is None else sample_s
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if ledger is not None:
        ledger.attempts()  # a broken ledger is refused before anything starts
    attempts: list[dict[str, Any]] | None = None
    t0 = time.time()

    def stop(signum, _frame):
        raise Interrupted(f"stopped by {signal.Signals(signum).name}")

    main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        with log.open("a", encoding="utf-8") as f:
            f.write(f"\n$ {shlex.join(cmd)}\n")
            f.flush()
            proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, text=True,
                                    preexec_fn=_die_with_parent)  # noqa: PLW1509 (this runner starts no threads)
            pidfd = os.pidfd_open(proc.pid)
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)  # readable once the child has ended
            status = "exited"
            try:
                attempts = ledger.start(proc.pid) if ledger is not None else None
                while not poller.poll(sample_s * 1000):
                    cpu = _proc_cpu_s(proc.pid)
                    if ledger is not None and cpu is not None:
                        ledger.update(attempts, cpu_s=cpu, wall_s=time.time() - t0)
            except BaseException as exc:  # noqa: BLE001 (re-raised below)  SIGTERM (Interrupted), SIGINT: stop the child
                if main_thread:  # a second SIGTERM must not cut the accounting short
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                interrupted = exc
                status = "interrupted"
                proc.terminate()
                if not poller.poll(30_000):
                    proc.kill()
            else:
                interrupted = None
            # wait4: this child's own CPU time (user + system), its children included once they are reaped
            _, wstatus, usage = os.wait4(proc.pid, 0)
            os.close(pidfd)
            proc.returncode = os.waitstatus_to_exitcode(wstatus)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    cpu, wall = usage.ru_utime + usage.ru_stime, time.time() - t0
    if ledger is not None and attempts is not None:
        ledger.update(attempts, cpu_s=cpu, wall_s=wall, status=status, exit_code=proc.returncode, exact=True)
    if isinstance(interrupted, KeyboardInterrupt):
        raise Interrupted("stopped by SIGINT") from interrupted
    if interrupted is not None:  # Interrupted (SIGTERM), or a failure of the runner itself: the child is stopped
        raise interrupted
    return proc.returncode, cpu, wall


def tail(log: Path, n: int = 1500) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-n:]


# ------------------------------------------------------------------ teacher latency and budgets
def teacher_latency(args, predictor, out: Path, on_line) -> dict[str, Any]:
    """The teacher's latency (measured once, then read back from ``<out>/teacher_latency.json``)."""
    path = out / "teacher_latency.json"
    if path.is_file():
        rec = read_json(path)
        on_line(f"teacher latency: reusing {path} (measured {rec.get('measured_utc')})")
    else:
        from transformers import AutoConfig

        from hwnas.devices.timing import TimingConfig
        from hwnas.distill.models import architecture_of
        from hwnas.search.verify import measure_student, predictor_device_settings
        from hwnas.training.teacher import resolve_teacher

        arch = architecture_of(AutoConfig.from_pretrained(resolve_teacher(args.teacher)))
        settings = predictor_device_settings(predictor)
        timing = TimingConfig.quick() if args.teacher_timing == "quick" else None
        on_line(f"measuring the teacher ({arch.key}) on {predictor.device}, {settings['threads']} thread(s), "
                f"seq {SEQ_LEN}, batch {BATCH_SIZE}, {args.teacher_timing} timing ...")
        t0 = time.time()
        m = measure_student(arch, device=predictor.device, seq_len=SEQ_LEN, batch_size=BATCH_SIZE,
                            threads=settings["threads"], dtype=settings["dtype"], predictor=predictor, timing=timing)
        s = m["student"]
        rec = {"arch": arch.key, "device": m["device"], "threads": m["threads"], "dtype": m["dtype"],
               "clock": m["clock"], "seq_len": SEQ_LEN, "batch_size": BATCH_SIZE, "timing": args.teacher_timing,
               "latency_ms": s["latency_ms"], "p10_ms": s.get("p10_ms"), "p90_ms": s.get("p90_ms"),
               "normalised_ms": m.get("student_normalised_ms"), "drift": m.get("drift"),
               "measured_s": round(time.time() - t0, 1), **_predicted_teacher(predictor, arch),
               "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_json(path, rec)
    if args.teacher_ms is not None:
        basis, base_ms = "given (--teacher-ms)", args.teacher_ms
    elif args.teacher_latency == "normalised" and rec.get("normalised_ms"):
        basis, base_ms = "drift-normalised", rec["normalised_ms"]
    else:
        basis, base_ms = "raw median", rec["latency_ms"]
    return {**rec, "basis": basis, "base_ms": base_ms}


def _predicted_teacher(predictor, arch) -> dict[str, Any]:
    """The predictor's own figure for the teacher: a drift-free cross-check of the measurement (noted when
    the teacher lies outside the predictor's training domain)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ms = float(predictor.predict([arch], seq_len=SEQ_LEN, batch_size=BATCH_SIZE)[0])
    out_of_domain = any("outside the training domain" in str(w.message) for w in caught)
    return {"predicted_ms": ms, "predicted_out_of_domain": out_of_domain}


def resolve_budgets(budgets: list[Budget], teacher: dict[str, Any] | None) -> list[tuple[Budget, float]]:
    return [(b, b.ms if b.fraction is None else float(b.fraction) * teacher["base_ms"]) for b in budgets]


def largest_params(problem) -> dict[str, Any]:
    """The feasible architecture (the search's rule: upper bound within the budget) with the most parameters."""
    import numpy as np

    idx = np.flatnonzero(problem.feasible)
    best = max(idx, key=lambda i: (problem.params[i], -problem.latency_ms[i]))
    return arch_record(problem, int(best))


def arch_record(problem, i: int) -> dict[str, Any]:
    a = problem.candidates[i]
    return {"arch": a.as_dict(), "key": a.key, "params": int(problem.params[i]),
            "latency_ms": float(problem.latency_ms[i]), "latency_upper_ms": float(problem.latency_upper_ms[i])}


def make_problem(args, predictor, budget_ms: float, label: str):
    from hwnas.errors import HwnasError
    from hwnas.search import SearchProblem

    try:
        return SearchProblem(space=args.space, latency=predictor, budget_ms=budget_ms, seq_len=SEQ_LEN,
                             batch_size=BATCH_SIZE)
    except HwnasError as exc:
        raise BadInput(f"budget {label} ({budget_ms:.3g} ms): {exc}") from None


# ------------------------------------------------------------------ the steps
def run_search(args, budget: Budget, budget_ms: float, out: Path, on_line) -> dict[str, Any]:
    folder = out / "search" / f"{args.estimator}-{budget.folder}"
    cfg = folder / "config.json"
    log = out / "logs" / f"search-{args.estimator}-{budget.folder}.log"
    ledger = ledger_for(out, log)
    done = cfg.is_file() and read_json(cfg).get("status") == "done" and (folder / "winner.json").is_file()
    if not done:
        resume = folder.is_dir() and any(folder.iterdir())
        cmd = hwnas_cmd(args, "search", "--predictor", args.predictor, "--estimator", args.estimator,
                        "--max-latency", f"{budget_ms:.6g}ms", "--out", str(folder), "--quiet",
                        "--seq-len", str(SEQ_LEN), "--batch-size", str(BATCH_SIZE), "--seed", str(args.search_seed))
        if args.supernet:
            cmd += ["--supernet", args.supernet]
        if args.estimator in ("task-proxy", "distill-proxy") and "--task" not in args.search_args:
            cmd += ["--task", args.task]
        cmd += shlex.split(args.search_args) + (["--resume"] if resume else [])
        on_line(f"[{budget.label}] hwnas search --estimator {args.estimator} --max-latency {budget_ms:.3f}ms"
                f"{' (resuming)' if resume else ''} ...")
        rc, _, _ = run_logged(cmd, log, ledger)
        if rc != 0:
            raise RuntimeError(f"hwnas search exited {rc}:\n{tail(log)}")
    spent = ledger.total() or {}
    w = read_json(folder / "winner.json")
    from hwnas.space import Architecture

    a = Architecture.from_dict(w["arch"])
    return {"folder": str(folder), "arch": a.as_dict(), "key": a.key, "score": w.get("score"),
            "params": int(w.get("params") or a.num_parameters()), "latency_ms": w.get("latency_ms"),
            "latency_upper_ms": w.get("latency_upper_ms"), "estimator": args.estimator,
            "evaluations": read_json(folder / "front.json").get("evaluations") if (folder / "front.json").is_file() else None,
            "cpu_s": spent.get("cpu_s"), "wall_s": spent.get("wall_s"), "cpu_attempts": spent.get("attempts"),
            "cpu_exact": spent.get("exact"), "reused": done}


def _slug(key: str) -> str:
    """``layers=3,hidden=192,heads=4,ffn=640`` -> ``L3-H192-A4-I640`` (a file name hwnas takes for a file)."""
    from hwnas.space import Architecture

    return Architecture.parse(key).short


def arch_file(args, budget: Budget, budget_ms: float, rec: dict[str, Any], predictor, out: Path) -> Path:
    """A ``winner.json``-format file for the architecture, so that ``hwnas distill`` reports the budget verdicts
    for both arms alike. Written once (a resumed distillation sees the same file)."""
    path = out / "archs" / budget.folder / f"{_slug(rec['key'])}.json"  # no '=': hwnas reads that as an architecture
    if not path.is_file():
        atomic_json(path, {"arch": rec["arch"], "latency_ms": rec["latency_ms"],
                           "latency_upper_ms": rec["latency_upper_ms"], "params": rec["params"],
                           "budget_ms": budget_ms, "space": args.space, "device": predictor.device,
                           "seq_len": SEQ_LEN, "batch_size": BATCH_SIZE, "predictor": args.predictor})
    return path


def run_folder(out: Path, budget: Budget, rec: dict[str, Any], seed: int) -> Path:
    return out / "runs" / budget.folder / f"{_slug(rec['key'])}-s{seed}"


def run_distill(args, budget: Budget, budget_ms: float, rec: dict[str, Any], seed: int, predictor, out: Path,
                on_line) -> dict[str, Any]:
    folder = run_folder(out, budget, rec, seed)
    report_file = folder / "report.json"
    log = out / "logs" / f"distill-{budget.folder}-{folder.name}.log"
    ledger = ledger_for(out, log)
    reused = report_file.is_file()
    if not reused:
        cmd = hwnas_cmd(args, "distill", "--arch", str(arch_file(args, budget, budget_ms, rec, predictor, out)),
                        "--task", args.task, "--out", str(folder), "--recipe", args.recipe, "--seed", str(seed),
                        "--teacher-seed", "0", "--teacher", args.teacher, "--threads", "1",
                        "--predictor", args.predictor, "--quiet", "--experience", str(out / "experience.jsonl"))
        if args.teacher_cache:
            cmd += ["--cache-dir", args.teacher_cache]
        if args.eval:
            cmd += ["--eval", args.eval]
        if args.eval_limit:
            cmd += ["--eval-limit", str(args.eval_limit)]
        cmd += shlex.split(args.distill_args)
        on_line(f"[{budget.label}] hwnas distill {rec['key']} seed {seed}"
                f"{' (resuming)' if folder.is_dir() else ''} ...")
        rc, _, _ = run_logged(cmd, log, ledger)
        if rc != 0 or not report_file.is_file():
            raise RuntimeError(f"hwnas distill exited {rc} (log {log}):\n{tail(log)}")
    return run_row(read_json(report_file), folder, seed, ledger.total(), reused)


def run_row(rep: dict[str, Any], folder: Path, seed: int, spent: dict[str, Any] | None,
            reused: bool) -> dict[str, Any]:
    """One run's figures from its ``report.json``; ``spent``: its CPU ledger's total over attempts (None: none
    recorded, e.g. a run finished before this runner kept ledgers)."""
    spent = spent or {}
    m = rep.get("measured_latency") or {}
    s_ms = (m.get("student") or {}).get("latency_ms")
    t_ms = (m.get("teacher") or {}).get("latency_ms")
    teacher = rep.get("teacher") or {}
    ft = teacher.get("fine_tune") or {}
    return {"seed": seed, "folder": str(folder), "accuracy": rep.get("student_score"), "metric": rep.get("metric"),
            "teacher_accuracy": rep.get("teacher_score"), "kept": rep.get("retained"),
            "parameters": rep.get("parameters"), "eval_rows": (rep.get("eval") or {}).get("examples"),
            "predicted_ms": (rep.get("predicted_latency") or {}).get("latency_ms"),
            "measured_ms": s_ms, "measured_p10_ms": (m.get("student") or {}).get("p10_ms"),
            "measured_p90_ms": (m.get("student") or {}).get("p90_ms"),
            "measured_normalised_ms": m.get("student_normalised_ms"), "teacher_measured_ms": t_ms,
            "ratio_to_teacher": s_ms / t_ms if s_ms and t_ms else None, "speedup_encoder": m.get("speedup"),
            "within_budget": m.get("within_budget"), "within_budget_normalised": m.get("within_budget_normalised"),
            "recipe": rep.get("recipe"), "steps": _steps(folder),
            "teacher_path": teacher.get("path"), "teacher_reused": teacher.get("reused"),
            "teacher_steps": ft.get("steps"), "cpu_s": spent.get("cpu_s"),
            "wall_s": spent["wall_s"] if spent.get("wall_s") is not None else rep.get("wall_s"),
            "cpu_attempts": spent.get("attempts"), "cpu_exact": spent.get("exact"), "reused": reused}


def _steps(folder: Path) -> int | None:
    cfg = folder / "distill_config.json"
    if not cfg.is_file():
        return None
    data = read_json(cfg)
    data = data.get("config", data) if isinstance(data, dict) else {}
    return data.get("steps")


# ------------------------------------------------------------------ figures
def _mean_sd(xs: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def compare(searched: list[float], baseline: list[float], same_arch: bool) -> dict[str, Any]:
    """Searched minus baseline mean accuracy, against the seed noise.

    The noise is the standard error of the difference of two means, ``sqrt(sd_s^2/n_s + sd_b^2/n_b)``
    (each arm's sd over its seeds); "more than the noise" means more than twice that. With one seed
    per arm the noise is unknown and no verdict beyond the sign is given.
    """
    ms, ss = _mean_sd(searched)
    mb, sb = _mean_sd(baseline)
    diff = ms - mb
    if same_arch:
        return {"diff": 0.0, "se": None, "verdict": "same architecture: the arms coincide (difference 0 by construction)",
                "at_least_as_accurate": True, "better_beyond_noise": False, "worse_beyond_noise": False}
    if ss is None or sb is None:
        return {"diff": diff, "se": None, "at_least_as_accurate": diff >= 0, "better_beyond_noise": None,
                "worse_beyond_noise": None,
                "verdict": f"{'at least as accurate' if diff >= 0 else 'worse'} (one seed: the seed noise is unknown)"}
    se = math.sqrt(ss ** 2 / len(searched) + sb ** 2 / len(baseline))
    if diff > 2 * se:
        verdict = "better by more than the seed noise"
    elif diff >= 0:
        verdict = "at least as accurate (the difference is within the seed noise)"
    elif diff >= -2 * se:
        verdict = "worse, but within the seed noise"
    else:
        verdict = "worse by more than the seed noise"
    return {"diff": diff, "se": se, "verdict": verdict, "at_least_as_accurate": diff >= 0,
            "better_beyond_noise": diff > 2 * se, "worse_beyond_noise": diff < -2 * se}


def _f(x: Any, fmt: str, none: str = "-") -> str:
    return none if x is None else format(x, fmt)


def render(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    st = results["settings"]
    add(f"bench_end_to_end: task {st['task']}" + (f", scored on {st['eval']} (first {st['eval_limit']} rows)"
                                                  if st.get("eval") else ", scored on hwnas' held-out rows"))
    add(f"space {st['space']}, predictor {st['predictor']}, estimator {st.get('estimator')}, recipe {st['recipe']}"
        + (f" + {st['distill_args']}" if st.get("distill_args") else "") + f", seeds {st['seeds']}")
    add(f"command: {results['command']}")
    t = results.get("teacher_latency")
    if t:
        add(f"teacher {t['arch']} measured on {t['device']}, {t['threads']} thread(s), seq {t['seq_len']}, batch "
            f"{t['batch_size']} ({t['timing']} timing, {t['measured_utc']}): median {t['latency_ms']:.2f} ms "
            f"[p10 {_f(t.get('p10_ms'), '.2f')}, p90 {_f(t.get('p90_ms'), '.2f')}], drift-normalised "
            f"{_f(t.get('normalised_ms'), '.2f')} ms; fractions are of the {t['basis']} figure, {t['base_ms']:.2f} ms")
        if t.get("predicted_ms") is not None:
            add(f"   (cross-check: the predictor says {t['predicted_ms']:.2f} ms for the teacher"
                + (", outside its training domain)" if t.get("predicted_out_of_domain") else ")"))
    teacher_seen = set()
    summary_rows = []
    for b in results["budgets"]:
        add("")
        frac = f" = {b['label']} of the teacher's {results['teacher_latency']['base_ms']:.2f} ms" if b.get("fraction") else ""
        add(f"== budget {b['budget_ms']:.3f} ms{frac} (feasible: predicted upper bound <= budget; "
            f"{b['feasible']} of {b['space_size']} architectures)")
        if b.get("search"):
            s = b["search"]
            add(f"   search: {s['estimator']}, {s.get('evaluations')} evaluations, winner score {_f(s.get('score'), '.4g')}, "
                f"CPU {_f(s.get('cpu_s'), '.0f')} s{' (reused)' if s.get('reused') else ''}")
        accs = {}
        for arm, a in b["arms"].items():
            runs = [r for r in a["runs"].values() if r.get("accuracy") is not None]
            add(f"   {arm:15s} {a['key']:36s} {a['params'] / 1e6:6.2f}M params, predicted {a['latency_ms']:.2f} ms "
                f"(upper {a['latency_upper_ms']:.2f})")
            if not runs:
                add("                   no finished run yet")
                continue
            xs = [r["accuracy"] for r in runs]
            accs[arm] = xs
            mean, sd = _mean_sd(xs)
            kept = [r["kept"] for r in runs if r.get("kept") is not None]
            meas = [r["measured_ms"] for r in runs if r.get("measured_ms")]
            ratio = [r["ratio_to_teacher"] for r in runs if r.get("ratio_to_teacher")]
            cpu = [r["cpu_s"] for r in runs if r.get("cpu_s") is not None and not r.get("shared")]
            add(f"                   accuracy {mean:.4f} ± {_f(sd, '.4f', 'n/a')} (sd over {len(xs)} seed(s): "
                + ", ".join(f"s{r['seed']} {r['accuracy']:.4f}" for r in runs) + ")"
                + (f"; kept {statistics.fmean(kept):.1%} of the teacher's {runs[0]['teacher_accuracy']:.4f}" if kept else ""))
            norm = [r["measured_normalised_ms"] for r in runs if r.get("measured_normalised_ms")]
            held = [r.get("within_budget_normalised") for r in runs if r.get("within_budget_normalised") is not None]
            add(f"                   measured {', '.join(f'{x:.2f}' for x in meas)} ms (deployed, raw median per run)"
                + (f", drift-normalised {', '.join(f'{x:.2f}' for x in norm)} ms" if norm else "")
                + (f", within the budget (normalised) in {sum(held)} of {len(held)}" if held else ""))
            add(f"                   ratio to the teacher measured in the same rounds {', '.join(f'{x:.3f}' for x in ratio)}"
                + (f" (speed-up x{1 / statistics.fmean(ratio):.2f})" if ratio else ""))
            shared = sum(1 for r in runs if r.get("shared"))
            own = [r for r in runs if r.get("cpu_s") is not None and not r.get("shared")]
            resumed = sum(1 for r in own if (r.get("cpu_attempts") or 1) > 1)
            sampled = sum(1 for r in own if r.get("cpu_exact") is False)
            add(f"                   CPU {sum(cpu):.0f} s over {len(cpu)} run(s)"
                + (f", {resumed} resumed (CPU summed over their attempts)" if resumed else "")
                + (f", {sampled} with CPU sampled before a runner was killed (up to {SAMPLE_S:.0f} s short per kill)"
                   if sampled else "")
                + (f", {shared} shared with the other arm (same architecture)" if shared else "")
                + (f", {len(runs) - len(cpu) - shared} without a recorded CPU time" if len(runs) > len(cpu) + shared else "")
                + f"; {runs[0].get('steps')} distillation steps")
            for r in runs:
                if r.get("teacher_path") and r["teacher_path"] not in teacher_seen:
                    teacher_seen.add(r["teacher_path"])
                    add(f"                   teacher: {r['teacher_path']} ({r.get('teacher_steps')} fine-tuning steps, "
                        f"{'cached, reused' if r.get('teacher_reused') else 'fine-tuned by this run'})")
        row = {"budget_ms": b["budget_ms"], "label": b["label"], "fraction": b.get("fraction")}
        if "searched" in accs and "largest-params" in accs:
            c = compare(accs["searched"], accs["largest-params"], b["arms"]["searched"]["key"] == b["arms"]["largest-params"]["key"])
            row.update(c)
            add(f"   verdict: searched - largest-params = {c['diff'] * 100:+.2f} points"
                + (f" (seed noise: se of the difference {c['se'] * 100:.2f} points)" if c.get("se") is not None else "")
                + f": {c['verdict']}")
        if "searched" in accs:
            runs = [r for r in b["arms"]["searched"]["runs"].values() if r.get("kept") is not None]
            if runs:
                row["kept_searched"] = statistics.fmean(r["kept"] for r in runs)
                ratio = [r["ratio_to_teacher"] for r in runs if r.get("ratio_to_teacher")]
                row["speedup_measured"] = 1 / statistics.fmean(ratio) if ratio else None
        summary_rows.append(row)
    add("")
    add("== summary")
    compared = [r for r in summary_rows if "diff" in r]
    if compared:
        every = all(r["at_least_as_accurate"] for r in compared)
        beyond = [r for r in compared if r.get("better_beyond_noise")]
        worse = [r for r in compared if r.get("worse_beyond_noise")]
        add(f"issue 12 goal (searched >= largest-params in every budget, better by more than the seed noise in at "
            f"least one): {'MET' if every and beyond else 'NOT MET'} -- at least as accurate in "
            f"{sum(r['at_least_as_accurate'] for r in compared)} of {len(compared)} budget(s), better beyond noise "
            f"in {len(beyond)}, worse beyond noise in {len(worse)}")
    four = [r for r in summary_rows if r.get("fraction") == "1/4" and r.get("kept_searched") is not None]
    if four:
        r = four[0]
        add(f"issue 14 goal (kept >= 97% of the teacher at the 4x speed-up): "
            f"{'MET' if r['kept_searched'] >= 0.97 else 'NOT MET'} -- kept {r['kept_searched']:.1%} at budget "
            f"{r['budget_ms']:.2f} ms (1/4 of the teacher); measured speed-up x{_f(r.get('speedup_measured'), '.2f')}")
    elif any(r.get("kept_searched") is not None for r in summary_rows):
        add("issue 14 goal: not judged (no 1/4 budget in this run)")
    steps = sorted({r.get("steps") for b in results["budgets"] for a in b["arms"].values() for r in a["runs"].values()
                    if r.get("steps") is not None})
    add(f"These figures hold at this training budget only: recipe {st['recipe']}"
        + (f" with {st['distill_args']}" if st.get("distill_args") else "")
        + f", {'/'.join(map(str, steps)) or '?'} distillation steps, {len(st['seeds'])} seed(s); longer distillation "
        "or another recipe may rank the students differently. Latencies were measured on a shared machine "
        "(raw medians drift with its load); the ratio to the teacher is measured in the same rounds.")
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", help="training data (as hwnas distill --task)")
    ap.add_argument("--eval", default=None, help="evaluation data (default: hwnas holds out the last 10%% of --task)")
    ap.add_argument("--eval-limit", type=int, default=None, help="score on the first N rows of --eval")
    ap.add_argument("--teacher", default="default", help="teacher (as hwnas distill --teacher)")
    ap.add_argument("--teacher-cache", default=None, help="cache folder of fine-tuned teachers (hwnas distill --cache-dir)")
    ap.add_argument("--predictor", help="latency predictor bundle (.hwnas) of the target device")
    ap.add_argument("--space", default="small", help="search space (the predictor's)")
    ap.add_argument("--budgets", help="e.g. 5ms,10ms or 1/3,1/4,1/6 (fractions of the teacher's measured latency)")
    ap.add_argument("--teacher-latency", choices=("normalised", "raw"), default="normalised",
                    help="which teacher figure fractions are taken of (default: drift-normalised)")
    ap.add_argument("--teacher-ms", type=float, default=None, help="the teacher's latency in ms, measured elsewhere")
    ap.add_argument("--teacher-timing", choices=("default", "quick"), default="default",
                    help="timing protocol of the teacher's measurement (quick: smoke runs only)")
    ap.add_argument("--estimator", default=None, help="hwnas search --estimator")
    ap.add_argument("--supernet", default=None, help="hwnas search --supernet (supernet-* estimators)")
    ap.add_argument("--search-args", default="", help="more hwnas search options, one string")
    ap.add_argument("--search-seed", type=int, default=0)
    ap.add_argument("--recipe", default="gt-v1", help="hwnas distill --recipe")
    ap.add_argument("--distill-args", default="", help="more hwnas distill options (override the recipe), one string")
    ap.add_argument("--seeds", default="0,1,2", help="student seeds")
    ap.add_argument("--arms", default="searched,largest-params", help=f"comma-separated: {', '.join(ARMS)}")
    ap.add_argument("--out", help="work folder (searches, runs, logs, lock)")
    ap.add_argument("--results", default=None, help="results JSON [default: <out>/results.json]")
    ap.add_argument("--nice", type=int, default=10)
    ap.add_argument("--max-runs", type=int, default=None, help="stop after this many new distillations (resume later)")
    ap.add_argument("--report-only", action="store_true", help="print the figures of --results and exit")
    ap.add_argument("--plan-only", action="store_true",
                    help="print each budget and its largest-params baseline, then exit (no search, no training)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a search that failed: what was finished is in the results JSON
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:  # SIGTERM/SIGINT: the child is stopped, its CPU time is in <out>/cpu
        print(f"interrupted ({exc}): finished runs are in the results JSON, the CPU time of the unfinished one in "
              f"{Path(args.out or '.') / 'cpu'}; rerun the same command to resume", file=sys.stderr)
        return 130


def _main(args) -> int:
    if args.report_only:
        if not args.results or not Path(args.results).is_file():
            raise BadInput("--report-only needs --results FILE (an existing results JSON)")
        print(render(read_json(Path(args.results))))
        return 0
    for flag in ("task", "predictor", "budgets", "out"):
        if getattr(args, flag) is None:
            raise BadInput(f"--{flag} is required")
    args.arm_list = parse_arms(args.arms)
    args.seed_list = parse_seeds(args.seeds)
    budgets = parse_budgets(args.budgets)
    check_inputs(args)
    from hwnas.predictors import load_predictor

    predictor = load_predictor(args.predictor)
    if predictor.space is not None and predictor.space != args.space:
        raise BadInput(f"--predictor {args.predictor} was trained on space {predictor.space!r}, not {args.space!r}")
    for b in budgets:  # budgets in ms are checked before anything is written; fractions once the teacher is measured
        if b.ms is not None:
            make_problem(args, predictor, b.ms, b.label)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = Path(args.results) if args.results else out / "results.json"
    lock = open(out / ".lock", "w")  # noqa: SIM115 (held until this runner exits)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BadInput(f"another bench_end_to_end runner holds {out / '.lock'}; wait for it or use another --out") from None

    settings = {"task": args.task, "eval": args.eval, "eval_limit": args.eval_limit, "teacher": args.teacher,
                "teacher_cache": args.teacher_cache, "predictor": args.predictor, "space": args.space,
                "estimator": args.estimator, "supernet": args.supernet, "search_args": args.search_args,
                "recipe": args.recipe, "distill_args": args.distill_args, "seeds": args.seed_list, "arms": args.arm_list,
                "budgets": [b.label for b in budgets]}
    old = read_json(results_path) if results_path.is_file() else None
    if old:
        changed = [k for k in FIXED if old["settings"].get(k) != settings.get(k)]
        if changed:
            raise BadInput(f"{results_path} was made with other settings ({', '.join(changed)}); "
                           "use another --out/--results")

    def say(line: str) -> None:
        print(line, flush=True)

    teacher = teacher_latency(args, predictor, out, say) if any(b.fraction for b in budgets) else None
    plan = []
    for b, ms in resolve_budgets(budgets, teacher):
        problem = make_problem(args, predictor, ms, b.label)
        plan.append((b, ms, problem))

    results: dict[str, Any] = {"bench": "bench_end_to_end", "command": shlex.join([sys.executable, *sys.argv]),
                               "settings": settings, "teacher_latency": teacher, "budgets": []}
    old_budgets = {ob["label"]: ob for ob in (old or {}).get("budgets", [])}
    for b, ms, problem in plan:
        entry = old_budgets.get(b.label, {})
        results["budgets"].append({"label": b.label, "fraction": str(b.fraction) if b.fraction else None,
                                   "budget_ms": ms, "feasible": int(problem.feasible.sum()),
                                   "space_size": len(problem.candidates), "search": entry.get("search"),
                                   "arms": entry.get("arms", {})})

    if args.plan_only:
        for b, ms, problem in plan:
            base = largest_params(problem)
            print(f"budget {b.label}: {ms:.3f} ms, {int(problem.feasible.sum())} of {len(problem.candidates)} feasible; "
                  f"largest-params {base['key']} ({base['params'] / 1e6:.2f}M, predicted {base['latency_ms']:.2f} ms, "
                  f"upper {base['latency_upper_ms']:.2f})")
        return 0

    def save() -> None:
        results["updated_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        atomic_json(results_path, results)

    # 1. the arms of every budget: searches first (cheap next to the distillations)
    for (b, ms, problem), entry in zip(plan, results["budgets"], strict=True):
        arms: dict[str, dict[str, Any]] = {}
        if "searched" in args.arm_list:
            prev_search = entry.get("search") or {}
            entry["search"] = run_search(args, b, ms, out, say)
            if entry["search"]["cpu_s"] is None and prev_search.get("cpu_s") is not None:  # recorded before ledgers
                entry["search"].update(cpu_s=prev_search["cpu_s"], wall_s=prev_search.get("wall_s"))
            s = entry["search"]
            arms["searched"] = {k: s[k] for k in ("arch", "key", "params", "latency_ms", "latency_upper_ms")}
        if "largest-params" in args.arm_list:
            arms["largest-params"] = largest_params(problem)
        for name, a in arms.items():
            prev = entry["arms"].get(name, {})
            a["runs"] = prev.get("runs", {}) if prev.get("key") == a["key"] else {}
        entry["arms"] = arms
        save()
        say(f"[{b.label}] budget {ms:.3f} ms: " + "; ".join(f"{n} {a['key']} ({a['params'] / 1e6:.2f}M)"
                                                           for n, a in arms.items()))

    # 2. the distillations, seed by seed, so a partial run already compares the arms
    new_runs = failed = 0
    for seed in args.seed_list:
        for (b, ms, _), entry in zip(plan, results["budgets"], strict=True):
            done_here: dict[str, dict[str, Any]] = {}
            for name in args.arm_list:
                a = entry["arms"][name]
                if a["key"] in done_here:  # the arms coincide: one distillation serves both
                    a["runs"][str(seed)] = {**done_here[a["key"]], "shared": True}
                    continue
                if args.max_runs is not None and new_runs >= args.max_runs and \
                        not (run_folder(out, b, a, seed) / "report.json").is_file():
                    say(f"stopping after {new_runs} new distillation(s) (--max-runs); rerun to continue")
                    save()
                    print(render(results))
                    return 0
                try:
                    row = run_distill(args, b, ms, a, seed, predictor, out, say)
                except RuntimeError as exc:  # one broken run must not stop the others
                    say(f"FAILED [{b.label}] {name} {a['key']} seed {seed}: {exc}")
                    failed += 1
                    continue
                if not row["reused"]:
                    new_runs += 1
                elif row["cpu_s"] is None and str(seed) in a["runs"]:  # recorded when it ran, before ledgers
                    row["cpu_s"] = a["runs"][str(seed)].get("cpu_s")
                a["runs"][str(seed)] = row
                done_here[a["key"]] = row
                save()
                say(f"[{b.label}] {name} {a['key']} seed {seed}: {row['metric']} {_f(row['accuracy'], '.4f')}, measured "
                    f"{_f(row['measured_ms'], '.2f')} ms, CPU {_f(row['cpu_s'], '.0f')} s"
                    f"{' (reused)' if row['reused'] else ''}")
    save()
    print()
    print(render(results))
    if failed:
        print(f"{failed} distillation(s) failed; their logs are in {out / 'logs'}; rerun to retry them", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
