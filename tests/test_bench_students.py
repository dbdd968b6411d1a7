"""bench/bench_students.py: the figures from result lines, resuming without redoing finished work, bad input
(no search or distillation runs here: every stage a rerun must skip is given as the files a real run leaves)."""

from __future__ import annotations

import fcntl
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.estimators.conftest import load_bench
from tests.supernet.conftest import make_teacher

ROOT = Path(__file__).resolve().parents[1]
PREDICTOR = ROOT / "bench/results/cpu-small.hwnas"
ARCH = "layers=2,hidden=384,heads=8,ffn=640"


@pytest.fixture(scope="module")
def bs():
    return load_bench("bench_students")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return make_teacher(tmp_path_factory.mktemp("students-teacher") / "tiny-bert")


def _row(seed: int, acc: float, teacher: float = 0.92, *, fraction: float = 4.0, arch: str = ARCH) -> dict:
    """A results.jsonl line as distill_stage writes it (fields of the smoke run's line)."""
    return {"task": "sst2", "fraction": fraction, "arch": arch, "seed": seed, "recipe": "default", "accuracy": acc,
            "teacher_accuracy": teacher, "kept": acc / teacher, "parameters": 14238082, "eval_rows": 50, "steps": 5,
            "cpu_s": 20.0 + seed, "wall_s": 30.0, "cpu_attempts": 1, "cpu_exact": True,
            "folder": f"/tmp/x/runs/sst2/1-4/L2-H384-A8-I640-s{seed}", "command": "hwnas distill ...",
            "finished_utc": "2026-11-30T03:08:53Z"}


def _teacher(path: str = "/tmp/teacher", acc: float = 0.92) -> dict:
    lat = {"latency_ms": 60.0, "p10_ms": 58.0, "p90_ms": 66.0}
    return {"task": "sst2", "path": path, "arch": "layers=6,hidden=384,heads=12,ffn=1536", "accuracy": acc,
            "eval_rows": 50, "eval_source": "dev.tsv", "max_len": 64, "train_rows": 200, "teacher_json_metrics": {},
            "latency": lat, "predicted_ms": 44.7, "normalised_ms": 44.0,
            "reference": {"arch": "layers=6,hidden=384,heads=8,ffn=1536", "latency": lat, "predicted_ms": 44.0}}


def _winner(fraction: float = 4.0, arch: str = ARCH, short: str = "L2-H384-A8-I640") -> dict:
    return {"fraction": fraction, "budget_ms": 44.0 / fraction, "arch": arch, "short": short, "params": 14089472,
            "predicted_ms": 9.7, "predicted_upper_ms": 10.7, "estimator": "params", "search_cpu_s": 3.0,
            "folder": "/tmp/x/search"}


def _latency(t_ms: float, s_ms: float, arch: str = ARCH) -> dict:
    return {"archs": [arch], "teacher": "/tmp/teacher", "models": {
        "teacher": {"latency_ms": t_ms, "p10_ms": t_ms * 0.95, "p90_ms": t_ms * 1.1},
        arch: {"latency_ms": s_ms, "p10_ms": s_ms * 0.95, "p90_ms": s_ms * 1.1}}}


def test_summary_mean_spread_kept_and_the_target_line(bs):
    rows = [_row(0, 0.90), _row(1, 0.88), _row(2, 0.91), _row(0, 0.5, fraction=6.0, arch="layers=2,hidden=192")]
    t = bs.summarise_task("sst2", _teacher(), _latency(64.0, 16.0), [_winner()], rows)
    s = t["students"][0]
    assert s["n"] == 3 and s["seeds"] == [0, 1, 2]  # the 1/6 row belongs to another student
    assert s["accuracy_mean"] == pytest.approx(statistics.fmean([0.90, 0.88, 0.91]))
    assert s["accuracy_sd"] == pytest.approx(statistics.stdev([0.90, 0.88, 0.91]))
    assert s["kept_min"] == pytest.approx(0.88 / 0.92) and s["speedup"] == pytest.approx(4.0)
    assert s["cpu_s_mean"] == pytest.approx(21.0)
    assert t["target"]["met"] is True and t["target"]["speedup_met"] is True  # mean kept 97.4%
    text = bs.render({"tasks": [t]})
    assert f"{s['accuracy_mean']:.4f} ± {s['accuracy_sd']:.4f} (3)" in text
    assert "97.5%" in text and "95.7%" in text and "meets the 97% target" in text
    assert "CPU time: searches 3 s, distillations 63 s" in text  # 20 + 21 + 22 CPU s over the three seeds

    slow = bs.summarise_task("sst2", _teacher(), _latency(60.0, 20.0), [_winner()], [_row(0, 0.85), _row(1, 0.90)])
    assert slow["target"]["met"] is False and slow["target"]["speedup_met"] is False
    assert "misses the 97% target" in slow["target"]["text"] and "3.00x (below the 4x asked)" in slow["target"]["text"]
    none = bs.summarise_task("sst2", _teacher(), _latency(60.0, 20.0, "layers=3,hidden=192"),
                             [_winner(3.0, "layers=3,hidden=192", "L3")], [])
    assert none["target"]["met"] is None and "not checked" in none["target"]["text"]
    # no runs yet: accuracy, kept and CPU time are "-", never an invented figure
    assert bs.render({"tasks": [none]}).splitlines()[-3].split()[-4:] == ["-", "-", "-", "-"]


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True, exist_ok=True)
    rows = "sentence\tlabel\n" + "".join(f"{w} film\t{i % 2}\n" for i, w in enumerate(["good", "bad"] * 10))
    (data / "sst2/train.tsv").write_text(rows, encoding="utf-8")
    (data / "sst2/dev.tsv").write_text(rows, encoding="utf-8")
    return data


def _argv(tmp_path: Path, teacher: Path, *extra: str) -> list[str]:
    return ["--data", str(_data(tmp_path)), "--work", str(tmp_path / "work"), "--tasks", "sst2",
            "--teacher-for", f"sst2={teacher}", "--predictor", str(PREDICTOR), "--fractions", "4", "--seeds", "0,1",
            "--steps", "5", "--limit", "20", "--eval-rows", "10", "--results", str(tmp_path / "out.json"), *extra]


def test_rerun_reuses_every_finished_stage_and_refuses_other_settings(bs, teacher, tmp_path, capsys, monkeypatch):
    capsys.readouterr()
    work = tmp_path / "work"
    tdir = work / "sst2"
    tdir.mkdir(parents=True)
    (tdir / "teacher.json").write_text(json.dumps(_teacher(str(teacher.resolve()))))
    lat = _latency(64.0, 16.0)
    lat["teacher"] = str(teacher.resolve())
    (tdir / "latency.json").write_text(json.dumps(lat))
    search = work / "search/sst2/1-4"
    search.mkdir(parents=True)
    (search / "config.json").write_text(json.dumps({"status": "done"}))
    (search / "winner.json").write_text(json.dumps({"arch": {"layers": 2, "hidden": 384, "heads": 8, "ffn": 640},
                                                    "params": 14089472, "latency_ms": 9.7, "latency_upper_ms": 10.7}))
    (work / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (_row(0, 0.90), _row(1, 0.91))))

    assert bs.main(_argv(tmp_path, teacher)) == 0
    out = capsys.readouterr().out
    assert not (work / "runs").exists() and not (work / "logs").exists()  # nothing searched, measured or trained
    assert "seed 0: accuracy 0.9000" in out and "(reused)" in out and "reproduce: python bench/bench_students.py" in out
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["tasks"][0]["students"][0]["n"] == 2 and saved["tasks"][0]["teacher_latency_ms"] == 64.0
    assert len((work / "results.jsonl").read_text().splitlines()) == 2  # no line appended twice

    # --report-only: a seed not run yet is not started, the finished ones are reported
    argv = _argv(tmp_path, teacher, "--report-only")
    argv[argv.index("--seeds") + 1] = "0,1,2"
    assert bs.main(argv) == 0
    assert not (work / "runs").exists() and not (work / "logs").exists()
    assert json.loads((tmp_path / "out.json").read_text())["tasks"][0]["students"][0]["n"] == 2
    # without --results a look at the figures writes no results file (not even the default one)
    argv = argv[:argv.index("--results")] + argv[argv.index("--results") + 2:]
    monkeypatch.chdir(tmp_path)
    assert bs.main(argv) == 0
    assert "not written (--report-only without --results)" in capsys.readouterr().out
    assert not (tmp_path / "bench").exists()

    assert bs.main(_argv(tmp_path, teacher, "--recipe", "minilm")) == 2  # other settings, same --work
    assert "changed: recipe" in capsys.readouterr().err
    with open(work / ".lock", "a+") as held:  # another runner holds the work folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert bs.main(_argv(tmp_path, teacher)) == 2
    assert "being written by another process" in capsys.readouterr().err


@pytest.mark.parametrize("change, message", [
    (("--tasks", "mnli"), "unknown or repeated task 'mnli'"),
    (("--fractions", "4,1"), "--fractions must be distinct numbers > 1"),
    (("--seeds", ""), "--seeds must be"),
    (("--teacher-for", "sst2=/nonexistent/teacher"), "is not a model folder"),
    (("--predictor", "/nonexistent/p.hwnas"), "--predictor /nonexistent/p.hwnas is not a file"),
    (("--recipe", "no-such-recipe"), "--recipe"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_is_written(bs, teacher, tmp_path, capsys, change, message):
    capsys.readouterr()
    argv = _argv(tmp_path, teacher)
    if change[0] in argv:
        argv[argv.index(change[0]) + 1] = change[1]
    else:
        argv += list(change)
    assert bs.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "work").exists()


def test_bad_input_exit_code_through_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench/bench_students.py"), "--data", str(tmp_path),
                           "--work", str(tmp_path / "w"), "--predictor", str(PREDICTOR), "--fractions", "0.5"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == "error: --fractions must be distinct numbers > 1 (the budget is teacher latency / " \
                                  "fraction, e.g. 3,4,6); got '0.5'"


def test_agnews_holds_out_what_hwnas_holds_out_and_a_teacher_with_other_classes_is_exit_2(bs, teacher, tmp_path,
                                                                                            capsys):
    data = _data(tmp_path)
    (data / "agnews").mkdir()
    topics = ("World", "Sports", "Business", "Sci/Tech")
    (data / "agnews/train.tsv").write_text("text\tlabel\n" + "".join(f"news item {i}\t{topics[i % 4]}\n" for i in range(30)),
                                           encoding="utf-8")
    args = bs.parse_args(["--data", str(data), "--work", str(tmp_path / "w"), "--predictor", str(PREDICTOR)])
    train, dev = bs.task_files("agnews", args, tmp_path / "w")
    train_rows, dev_rows = Path(train).read_text().splitlines(), Path(dev).read_text().splitlines()
    assert train_rows[0] == dev_rows[0] == "text\tlabel"
    assert train_rows[1:] == [f"news item {i}\t{topics[i % 4]}" for i in range(27)]  # min(1000, 30 // 10) held out
    assert dev_rows[1:] == [f"news item {i}\t{topics[i % 4]}" for i in range(27, 30)]

    capsys.readouterr()
    argv = [a if a != "sst2" else "agnews" for a in _argv(tmp_path, teacher)]
    argv[argv.index("--teacher-for") + 1] = f"agnews={teacher}"  # a 2-output head for a 4-class task
    assert bs.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: agnews: teacher") and "but the task has 4 (classes)" in err[0]
    assert not (tmp_path / "work/results.jsonl").exists()


@pytest.mark.slow
def test_remeasure_keeps_the_earlier_measurement_beside_the_new_one(bs, teacher, tmp_path, capsys):
    # the shipped teacher: the tiny test teacher has too few positions for the bench's sequence of 128
    from hwnas.training.teacher import resolve_teacher

    teacher = Path(resolve_teacher("default"))
    work = tmp_path / "work"
    tdir = work / "sst2"
    tdir.mkdir(parents=True)
    lat = {**_latency(64.0, 16.0), "teacher": str(teacher.resolve()), "measured_utc": "2026-11-30T04:00:00Z"}
    (tdir / "latency.json").write_text(json.dumps(lat))
    winners = [{"arch": ARCH}]
    args = bs.parse_args(_argv(tmp_path, teacher, "--remeasure"))
    rec = bs.latency_stage("sst2", {"path": str(teacher.resolve())}, winners, args, work)
    kept = json.loads((tdir / "latency-2026-11-30T040000Z.json").read_text())
    assert kept["models"]["teacher"]["latency_ms"] == 64.0  # the earlier figures, untouched
    assert rec == json.loads((tdir / "latency.json").read_text())
    assert rec["models"]["teacher"]["latency_ms"] != 64.0 and rec["models"][ARCH]["latency_ms"] > 0


def test_two_budgets_that_pick_the_same_student_share_its_runs(bs, teacher, tmp_path):
    """1/4 and 1/6 picking one architecture: the 1/6 row is the 1/4 run recorded again, nothing distilled twice."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "results.jsonl").write_text(json.dumps(_row(0, 0.90)) + "\n")
    args = bs.parse_args(_argv(tmp_path, teacher))
    row = bs.distill_stage("sst2", _winner(6.0), 0, _teacher(str(teacher)), args, work)
    assert row["fraction"] == 6.0 and row["same_run_as_fraction"] == 4.0 and row["accuracy"] == 0.90
    assert not (work / "runs").exists() and not (work / "logs").exists()  # no hwnas distill started
    lines = [json.loads(x) for x in (work / "results.jsonl").read_text().splitlines()]
    assert [r["fraction"] for r in lines] == [4.0, 6.0]
    again = bs.distill_stage("sst2", _winner(6.0), 0, _teacher(str(teacher)), args, work)  # read back, not re-added
    assert again["reused"] and len((work / "results.jsonl").read_text().splitlines()) == 2
    t = bs.summarise_task("sst2", _teacher(), _latency(64.0, 16.0), [_winner(4.0), _winner(6.0)], lines)
    assert [s["n"] for s in t["students"]] == [1, 1]


def test_a_ledger_keeps_finished_runs_for_a_fresh_work_folder_with_the_same_teacher(bs, teacher, tmp_path):
    """--ledger: a finished row is copied into the committed file, and a fresh --work whose teacher has the very same
    weights takes it back instead of distilling again; another teacher's weights take nothing."""
    sha = bs._ledger.weights_sha256(teacher)
    assert sha is not None
    ledger = tmp_path / "committed" / "students.jsonl"
    work = tmp_path / "work"
    work.mkdir()
    (work / "results.jsonl").write_text(json.dumps({**_row(0, 0.90), "teacher_sha256": sha}) + "\n")
    args = bs.parse_args(_argv(tmp_path, teacher, "--ledger", str(ledger)))
    bs.distill_stage("sst2", _winner(6.0), 0, _teacher(str(teacher)), args, work)  # the 1/4 run, recorded for 1/6
    assert [(r["fraction"], r["teacher_sha256"]) for r in bs._ledger.read_jsonl(ledger)] == [(6.0, sha)]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    counts = bs._ledger.carry_in(ledger, fresh / "results.jsonl", bs.row_key, {"sst2": sha})
    assert counts["carried"] == 1
    row = bs.distill_stage("sst2", _winner(6.0), 0, _teacher(str(teacher)), args, fresh)
    assert row["reused"] and row["accuracy"] == 0.90 and not (fresh / "runs").exists()
    other = tmp_path / "other"
    other.mkdir()
    counts = bs._ledger.carry_in(ledger, other / "results.jsonl", bs.row_key, {"sst2": "0" * 64})
    assert counts == {"carried": 0, "other_teacher": 1, "recorded": 0}
    assert bs._ledger.read_jsonl(other / "results.jsonl") == []
