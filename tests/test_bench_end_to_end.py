"""bench/bench_end_to_end.py: budgets, the largest-params baseline, the verdict, and bad input (no training here)."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "bench/ground_truth/cpu-tiny.hwnas"


@pytest.fixture(scope="module")
def e2e():
    spec = importlib.util.spec_from_file_location("bench_end_to_end", ROOT / "bench/bench_end_to_end.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    task = tmp_path / "task.tsv"
    task.write_text("sentence\tlabel\ngood\t1\nbad\t0\n", encoding="utf-8")
    return ["--task", str(task), "--predictor", str(TINY), "--space", "tiny", "--estimator", "params",
            "--out", str(tmp_path / "out"), *extra]


def test_budgets_parse_ms_and_fractions(e2e):
    b = e2e.parse_budgets("1/3, 1/4,10ms,800us")
    assert [x.label for x in b] == ["1/3", "1/4", "10ms", "0.8ms"]
    assert b[0].fraction == Fraction(1, 3) and b[0].ms is None
    assert b[2].ms == 10.0 and b[3].ms == pytest.approx(0.8)
    assert b[0].folder == "1of3" and b[3].folder == "0p8ms"
    for bad in ("5xx", "3/2", "0/4", "1/4,1/4", ""):
        with pytest.raises(e2e.BadInput):
            e2e.parse_budgets(bad)


def test_arms_and_seeds_are_checked(e2e):
    assert e2e.parse_arms("searched,largest-params") == ["searched", "largest-params"]
    with pytest.raises(e2e.BadInput, match="unknown or repeated arm 'biggest'"):
        e2e.parse_arms("searched,biggest")
    assert e2e.parse_seeds("0,1,2") == [0, 1, 2]
    for bad in ("0,0", "-1", "a"):
        with pytest.raises(e2e.BadInput):
            e2e.parse_seeds(bad)


def test_largest_params_uses_the_searchs_feasibility_rule(e2e):
    from hwnas.predictors import load_predictor
    from hwnas.search import SearchProblem

    problem = SearchProblem(space="tiny", latency=load_predictor(TINY), budget_ms=6.0)
    rec = e2e.largest_params(problem)
    i = next(k for k, a in enumerate(problem.candidates) if a.key == rec["key"])
    assert problem.latency_upper_ms[i] <= 6.0  # the upper bound, not the point prediction, decides
    assert rec["params"] == problem.params[problem.feasible].max()
    # some architecture with more parameters exists but is not feasible: the budget bites
    assert problem.params.max() > rec["params"]
    ties = np.flatnonzero(problem.feasible & (problem.params == rec["params"]))
    assert rec["latency_ms"] == pytest.approx(problem.latency_ms[ties].min())


def test_verdict_against_seed_noise(e2e):
    better = e2e.compare([0.90, 0.91, 0.92], [0.85, 0.86, 0.87], same_arch=False)
    assert better["better_beyond_noise"] and better["diff"] == pytest.approx(0.05)
    assert better["se"] == pytest.approx(math.sqrt(2 * 0.01 ** 2 / 3))
    within = e2e.compare([0.861, 0.871, 0.881], [0.86, 0.87, 0.88], same_arch=False)
    assert within["at_least_as_accurate"] and not within["better_beyond_noise"]
    assert "within the seed noise" in within["verdict"]
    worse = e2e.compare([0.80, 0.81, 0.82], [0.86, 0.87, 0.88], same_arch=False)
    assert worse["worse_beyond_noise"] and not worse["at_least_as_accurate"]
    one = e2e.compare([0.9], [0.8], same_arch=False)
    assert one["se"] is None and "one seed" in one["verdict"]
    same = e2e.compare([0.9, 0.8], [0.9, 0.8], same_arch=True)
    assert same["diff"] == 0 and "coincide" in same["verdict"]


@pytest.mark.parametrize("extra, message", [
    (["--budgets", "1ms"], "no architecture in space tiny is predicted under 1 ms"),
    (["--budgets", "5ms", "--arms", "searched,nope"], "unknown or repeated arm 'nope'"),
    (["--budgets", "five"], "cannot read 'five'"),
    (["--budgets", "5ms", "--recipe", "nope"], "unknown recipe 'nope'"),
    (["--budgets", "5ms", "--estimator", "nope"], "unknown estimator 'nope'"),
])
def test_bad_input_is_one_line_exit_2_before_anything_is_written(e2e, tmp_path, capsys, extra, message):
    assert e2e.main(_argv(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_second_runner_is_refused(e2e, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert e2e.main(_argv(tmp_path, "--budgets", "6ms")) == 2
    assert "another bench_end_to_end runner holds" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [".lock"]  # nothing searched or trained


def _arm(key: str, accs: list[float], teacher: float = 0.90, ratio: float = 0.25) -> dict:
    runs = {str(i): {"seed": i, "accuracy": a, "kept": a / teacher, "teacher_accuracy": teacher,
                     "measured_ms": 10.0, "ratio_to_teacher": ratio, "cpu_s": 300.0, "steps": 500}
            for i, a in enumerate(accs)}
    return {"key": key, "params": 10_000_000, "latency_ms": 9.0, "latency_upper_ms": 9.8, "runs": runs}


def test_printout_states_both_goals(e2e):
    results = {
        "command": "bench_end_to_end.py ...", "teacher_latency": {
            "arch": "layers=6,hidden=384,heads=12,ffn=1536", "device": "cpu", "threads": 1, "seq_len": 128,
            "batch_size": 1, "timing": "default", "measured_utc": "2026-11-29T00:00:00Z", "latency_ms": 41.0,
            "normalised_ms": 40.0, "basis": "drift-normalised", "base_ms": 40.0},
        "settings": {"task": "t.tsv", "eval": None, "space": "small", "predictor": "p.hwnas", "estimator": "params",
                     "recipe": "gt-v1", "distill_args": "", "seeds": [0, 1, 2]},
        "budgets": [
            {"label": "1/4", "fraction": "1/4", "budget_ms": 10.0, "feasible": 80, "space_size": 630,
             "arms": {"searched": _arm("layers=4,hidden=256,heads=4,ffn=1024", [0.88, 0.885, 0.89]),
                      "largest-params": _arm("layers=2,hidden=384,heads=4,ffn=1024", [0.85, 0.855, 0.86])}},
            {"label": "1/3", "fraction": "1/3", "budget_ms": 13.3, "feasible": 200, "space_size": 630,
             "arms": {"searched": _arm("layers=5,hidden=256,heads=4,ffn=1024", [0.87, 0.88, 0.89]),
                      "largest-params": _arm("layers=5,hidden=256,heads=4,ffn=1024", [0.87, 0.88, 0.89])}},
        ],
    }
    text = e2e.render(results)
    assert "verdict: searched - largest-params = +3.00 points" in text
    assert "better by more than the seed noise" in text and "the arms coincide" in text
    assert "issue 12 goal" in text and ": MET -- at least as accurate in 2 of 2 budget(s), better beyond noise in 1" in text
    # kept 0.885 / 0.90 = 98.3% at 1/4, measured speed-up 4x
    assert "issue 14 goal (kept >= 97% of the teacher at the 4x speed-up): MET -- kept 98.3%" in text
    assert "x4.00" in text


# ------------------------------------------------------------------ CPU time across killed and resumed attempts
BURN = [sys.executable, "-c", "while True: pass"]  # a real child that spends CPU until it is killed


def _burn_for(seconds: float) -> list[str]:
    return [sys.executable, "-c", f"import time\nwhile time.process_time() < {seconds}: pass"]


def _wait_for_cpu(ledger, at_least: float, timeout: float = 60.0) -> dict:
    """The ledger's running attempt once its sampled CPU time reaches ``at_least`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempts = ledger.attempts() if ledger.path.is_file() else []
        if attempts and attempts[-1]["status"] == "running" and attempts[-1]["cpu_s"] >= at_least:
            return attempts[-1]
        time.sleep(0.05)
    raise AssertionError(f"no running attempt reached {at_least} CPU s in {timeout} s: {ledger.path}")


def _gone(pid: int, timeout: float = 30.0) -> bool:
    """The process ``pid`` has ended (a zombie nobody reaps counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat[stat.rindex(")") + 2] in "ZX":
            return True
        time.sleep(0.05)
    return False


def test_a_killed_child_and_its_resumed_attempt_are_summed(e2e, tmp_path):
    ledger = e2e.CpuLedger(tmp_path / "cpu" / "run.json")
    log = tmp_path / "logs" / "run.log"

    def kill_child():
        os.kill(_wait_for_cpu(ledger, 0.4)["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_child)
    killer.start()
    rc1, cpu1, _ = e2e.run_logged(BURN, log, ledger, sample_s=0.05)
    killer.join()
    assert rc1 == -signal.SIGKILL and cpu1 >= 0.4
    rc2, cpu2, _ = e2e.run_logged(_burn_for(0.3), log, ledger, sample_s=0.05)
    assert rc2 == 0 and cpu2 >= 0.3
    attempts = ledger.attempts()
    assert [(a["status"], a["exit_code"], a["exact"]) for a in attempts] == [("exited", -9, True), ("exited", 0, True)]
    assert [a["cpu_s"] for a in attempts] == [cpu1, cpu2]  # wait4's own figures, not the samples
    total = ledger.total()
    assert total["attempts"] == 2 and total["exact"] and total["cpu_s"] == pytest.approx(cpu1 + cpu2)


RUNNER = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("bench_end_to_end", {script!r})
e2e = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = e2e
spec.loader.exec_module(e2e)
try:
    e2e.run_logged({cmd!r}, Path({log!r}), e2e.CpuLedger(Path({ledger!r})), sample_s=0.05)
except e2e.Interrupted as exc:
    print("interrupted:", exc)
    sys.exit(130)
"""


def _start_runner(tmp_path, ledger_path: Path) -> subprocess.Popen:
    code = RUNNER.format(script=str(ROOT / "bench/bench_end_to_end.py"), cmd=BURN, log=str(tmp_path / "run.log"),
                         ledger=str(ledger_path))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_a_runner_killed_outright_leaves_its_last_sample_and_the_next_attempt_adds_to_it(e2e, tmp_path):
    ledger = e2e.CpuLedger(tmp_path / "cpu" / "run.json")
    runner = _start_runner(tmp_path, ledger.path)
    child = _wait_for_cpu(ledger, 0.4)
    runner.kill()  # SIGKILL: no handler runs; the child gets SIGTERM from the kernel (PR_SET_PDEATHSIG)
    runner.wait()
    assert _gone(child["pid"]), "the child outlived its killed runner"
    sampled = ledger.attempts()[-1]
    assert sampled["status"] == "running" and sampled["cpu_s"] >= 0.4 and not sampled["exact"]
    rc, cpu, _ = e2e.run_logged(_burn_for(0.2), tmp_path / "run.log", ledger, sample_s=0.05)
    assert rc == 0
    first, second = ledger.attempts()
    assert first["status"] == "runner killed" and first["cpu_s"] == sampled["cpu_s"]
    assert second["status"] == "exited" and second["cpu_s"] == cpu
    total = ledger.total()
    assert total["cpu_s"] == pytest.approx(sampled["cpu_s"] + cpu) and total["attempts"] == 2
    assert total["exact"] is False  # one figure is a sample (at most SAMPLE_S short)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_runner_stops_its_child_and_records_its_exact_cpu(e2e, tmp_path, sig):
    ledger = e2e.CpuLedger(tmp_path / "cpu" / "run.json")
    runner = _start_runner(tmp_path, ledger.path)
    child = _wait_for_cpu(ledger, 0.4)
    runner.send_signal(sig)
    out, _ = runner.communicate(timeout=60)
    assert runner.returncode == 130 and f"interrupted: stopped by {sig.name}" in out
    assert _gone(child["pid"])
    (attempt,) = ledger.attempts()
    assert attempt["status"] == "interrupted" and attempt["exact"] and attempt["exit_code"] == -signal.SIGTERM
    assert attempt["cpu_s"] >= child["cpu_s"]  # the exact figure at the end, at least the last sample


def test_a_broken_ledger_is_refused_before_the_child_starts(e2e, tmp_path):
    path = tmp_path / "cpu" / "run.json"
    path.parent.mkdir()
    path.write_text("{not json")
    with pytest.raises(e2e.BadInput, match="is not a CPU ledger"):
        e2e.run_logged(_burn_for(0.1), tmp_path / "run.log", e2e.CpuLedger(path))
    assert not (tmp_path / "run.log").exists()


def test_a_reused_run_reports_the_cpu_of_all_its_attempts(e2e, tmp_path):
    """A run finished by a resumed attempt: its row (read back from report.json) carries every attempt's CPU, and
    the figures say so instead of 'without a recorded CPU time'."""
    out = tmp_path / "out"
    budget = e2e.parse_budgets("5ms")[0]
    rec = {"key": "layers=1,hidden=128,heads=2,ffn=256", "params": 4_000_000, "latency_ms": 1.0,
           "latency_upper_ms": 1.1, "arch": {"layers": 1, "hidden": 128, "heads": 2, "ffn": 256}}
    folder = e2e.run_folder(out, budget, rec, 0)
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"student_score": 0.8, "teacher_score": 0.9, "retained": 0.889}))
    log = out / "logs" / f"distill-{budget.folder}-{folder.name}.log"
    ledger = e2e.ledger_for(out, log)
    for seconds in (0.2, 0.1):
        assert e2e.run_logged(_burn_for(seconds), log, ledger, sample_s=0.05)[0] == 0
    row = e2e.run_distill(None, budget, 5.0, rec, 0, None, out, print)  # report.json exists: nothing runs
    assert row["reused"] and row["cpu_attempts"] == 2 and row["cpu_s"] == pytest.approx(ledger.total()["cpu_s"])
    results = {"command": "c", "settings": {"task": "t.tsv", "eval": None, "space": "tiny", "predictor": "p",
                                            "estimator": None, "recipe": "gt-v1", "distill_args": "", "seeds": [0]},
               "budgets": [{"label": "5ms", "fraction": None, "budget_ms": 5.0, "feasible": 1, "space_size": 1,
                            "arms": {"largest-params": {**rec, "runs": {"0": row}}}}]}
    text = e2e.render(results)
    assert f"CPU {row['cpu_s']:.0f} s over 1 run(s), 1 resumed (CPU summed over their attempts)" in text
    assert "without a recorded CPU time" not in text


@pytest.mark.slow
def test_a_real_distillation_killed_midway_and_resumed_counts_both_attempts(e2e, tmp_path, monkeypatch):
    """The real thing at toy scale (about 30-50 s on a loaded machine): ``hwnas distill`` through run_distill, its child killed after a
    few CPU seconds (the run fails, as when the OOM killer strikes), then rerun: the row carries both attempts."""
    import argparse

    import torch
    from transformers import AutoTokenizer, BertModel

    from hwnas.data import embedded_path
    from hwnas.distill.models import resolve_teacher
    from hwnas.predictors import load_predictor
    from hwnas.space import Architecture

    teacher = tmp_path / "teacher"
    tokenizer = AutoTokenizer.from_pretrained(resolve_teacher("default"))
    torch.manual_seed(0)
    BertModel(Architecture(2, 128, 2, 256).to_bert_config(vocab_size=tokenizer.vocab_size,
                                                          max_position_embeddings=128)).save_pretrained(teacher)
    tokenizer.save_pretrained(teacher)
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(e2e, "SAMPLE_S", 0.2)
    out = tmp_path / "out"
    args = argparse.Namespace(nice=0, predictor=str(TINY), recipe="gt-v1", teacher=str(teacher),
                              teacher_cache=str(tmp_path / "teachers"), eval=None, eval_limit=None, space="tiny",
                              task=str(embedded_path("sst2/train.tsv")),
                              distill_args="--steps 20 --limit 100 --teacher-steps 2 --max-len 24 --batch-size 8 "
                                           "--no-measure")
    student = Architecture(1, 128, 2, 256)
    rec = {"arch": student.as_dict(), "key": student.key, "params": student.num_parameters(), "latency_ms": 1.0,
           "latency_upper_ms": 1.1}
    budget = e2e.parse_budgets("5ms")[0]
    predictor = load_predictor(TINY)
    folder = e2e.run_folder(out, budget, rec, 0)
    ledger = e2e.ledger_for(out, out / "logs" / f"distill-{budget.folder}-{folder.name}.log")

    def kill_child():
        os.kill(_wait_for_cpu(ledger, 3.0, timeout=120)["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_child)
    killer.start()
    with pytest.raises(RuntimeError, match="hwnas distill exited -9"):
        e2e.run_distill(args, budget, 5.0, rec, 0, predictor, out, print)
    killer.join()
    killed = ledger.attempts()[0]
    assert killed["status"] == "exited" and killed["exit_code"] == -9 and killed["cpu_s"] >= 3.0
    row = e2e.run_distill(args, budget, 5.0, rec, 0, predictor, out, print)
    first, second = ledger.attempts()
    assert second["status"] == "exited" and second["exit_code"] == 0 and second["exact"]
    assert row["cpu_attempts"] == 2 and row["cpu_s"] == pytest.approx(first["cpu_s"] + second["cpu_s"])
    assert row["cpu_s"] >= second["cpu_s"] + 3.0  # the killed attempt's CPU is not lost
    assert row["steps"] == 20 and 0.0 <= row["accuracy"] <= 1.0 and not row["reused"]
    again = e2e.run_distill(args, budget, 5.0, rec, 0, predictor, out, print)  # finished: reused, same CPU
    assert again["reused"] and again["cpu_s"] == row["cpu_s"]
    print(f"attempts: killed {first['cpu_s']:.1f} CPU s, resumed {second['cpu_s']:.1f} CPU s, run {row['cpu_s']:.1f} CPU s")
