"""bench_autodistill.py and the run helper it shares with bench_recipe.py: the CPU time of a run finished before
its row was written or resumed from a checkpoint is unknown, not the seconds of reading it back; experience
records get their seeds from results.jsonl; ``--evaluate-only`` trains nothing and writes nothing into --work
(real ``hwnas distill`` subprocesses on a tiny teacher)."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from hwnas.data import embedded_path
from tests.estimators.conftest import load_bench


@pytest.fixture(scope="module")
def recipe_bench():
    return load_bench("bench_recipe")


@pytest.fixture(scope="module")
def autodistill_bench():
    return load_bench("bench_autodistill")


def test_cpu_of_a_resumed_or_read_back_run_is_unknown_not_wrong(recipe_bench):
    fresh = recipe_bench.cpu_fields(71.96, 180.04, {"training": {"distill": {"resumed_from": 0}}}, False)
    assert fresh == {"cpu_s": 72.0, "wall_s": 180.0}
    read_back = recipe_bench.cpu_fields(5.8, 22.3, {"training": {"distill": {"resumed_from": 0}}}, True)
    assert read_back["cpu_s"] is None and read_back["wall_s"] is None and "finished before" in read_back["cpu_note"]
    resumed = recipe_bench.cpu_fields(52.1, 202.6, {"training": {"agnostic": {"resumed_from": 0},
                                                                 "distill": {"resumed_from": 100}}}, False)
    assert resumed["cpu_s"] is None and resumed["cpu_s_after_resume"] == 52.1 and "step 100" in resumed["cpu_note"]
    assert recipe_bench.fmt_cpu(read_back) == "CPU unknown" and recipe_bench.fmt_cpu(fresh) == "72 CPU s"


def test_rows_written_before_the_fix_are_audited_against_their_reports(recipe_bench, tmp_path):
    def report(folder, wall_s, resumed_from=0):
        folder.mkdir(parents=True)
        (folder / "report.json").write_text(json.dumps({"wall_s": wall_s,
                                                        "training": {"distill": {"resumed_from": resumed_from}}}))
        return folder

    read_back = {"task": "sst2", "cpu_s": 5.8, "wall_s": 22.3}  # the report says the run itself took 225 s
    audited = recipe_bench.audit_cpu(read_back, report(tmp_path / "a", 225.6))
    assert audited["cpu_s"] is None and "finished before" in audited["cpu_note"] and read_back["cpu_s"] == 5.8
    genuine = {"task": "sst2", "cpu_s": 72.1, "wall_s": 899.4}
    assert recipe_bench.audit_cpu(genuine, report(tmp_path / "b", 893.0)) == genuine
    resumed = recipe_bench.audit_cpu({"cpu_s": 52.1, "wall_s": 202.6}, report(tmp_path / "c", 190.0, 100))
    assert resumed["cpu_s"] is None and resumed["cpu_s_after_resume"] == 52.1
    assert recipe_bench.audit_cpu(genuine, tmp_path / "no-such-run") == genuine


def test_a_report_with_its_own_cpu_ledger_gives_the_figure_of_every_attempt(recipe_bench, tmp_path):
    ledger = {"cpu_s": 431.25, "cpu_attempts": 2, "training": {"distill": {"resumed_from": 300}}}
    resumed = recipe_bench.cpu_fields(52.1, 202.6, ledger, False)
    assert resumed["cpu_s"] == 431.2 and resumed["cpu_attempts"] == 2 and "ledger" in resumed["cpu_note"]
    read_back = recipe_bench.cpu_fields(5.8, 22.3, {**ledger, "cpu_attempts": 1,
                                                    "training": {"distill": {"resumed_from": 0}}}, True)
    assert read_back["cpu_s"] == 431.2 and recipe_bench.fmt_cpu(read_back) == "431 CPU s"
    # a fresh, uninterrupted run keeps the bench's own measure (it includes the interpreter's start-up)
    assert recipe_bench.cpu_fields(71.96, 180.04, {**ledger, "training": {"distill": {"resumed_from": 0}}},
                                   False) == {"cpu_s": 72.0, "wall_s": 180.0}
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({**ledger, "wall_s": 900.0}))
    audited = recipe_bench.audit_cpu({"task": "sst2", "cpu_s": 5.8, "wall_s": 22.3}, folder)
    assert audited["cpu_s"] == 431.2 and audited["cpu_attempts"] == 2


def test_records_take_the_seed_of_their_row(autodistill_bench):
    def rec(task, recipe, kept):
        return {"task": {"id": "x", "name": task}, "recipe": {"name": recipe}, "result": {"kept": kept}}

    results = [{"task": "sst2", "variant": "default", "seed": 0, "kept": 0.8625336967063791},
               {"task": "sst2", "variant": "default", "seed": 1, "kept": 0.85},
               {"task": "sst2", "variant": "minilm", "seed": 0, "kept": 0.85},
               {"task": "news", "variant": "default", "seed": 0, "kept": 0.85}]
    records = [rec("sst2", "default", 0.85), rec("sst2", "default", 0.8625336967063791), rec("news", "default", 0.85),
               rec("sst2", "default", 0.85), rec("agnews", "default", 0.5)]
    # the third sst2 default record has no row left (written before the row: a run in progress), nor agnews's
    assert autodistill_bench.record_seeds(records, results) == [1, 0, 0, None, None]


@pytest.mark.slow
def test_a_run_finished_before_its_row_gets_its_ledger_cpu_or_unknown_and_evaluate_only_writes_nothing(
        tiny_teacher, tmp_path, recipe_bench, autodistill_bench, capsys):
    data = tmp_path / "data"
    shutil.copytree(embedded_path("sst2/train.tsv").parent, data / "sst2")
    work = tmp_path / "work"
    ap = argparse.ArgumentParser()
    recipe_bench.common_args(ap)
    typed = ["--data", str(data), "--work", str(work), "--arch", "L1-H32-A2-I64", "--steps", "3", "--batch-size", "8",
             "--max-len", "24", "--limit", "60", "--eval-rows", "40", "--teacher-for", f"sst2={tiny_teacher}"]
    args = ap.parse_args(typed)
    first = recipe_bench.run_distill("sst2", "logits-only", 0, "logits-only", [], args)
    assert first["cpu_s"] > 0 and "cpu_note" not in first
    results = work / "results.jsonl"
    results.write_text("")  # the bench killed after hwnas distill finished, before the row was written
    again = recipe_bench.run_distill("sst2", "logits-only", 0, "logits-only", [], args)
    report_file = work / "runs" / "sst2" / "logits-only-s0" / "report.json"
    report = json.loads(report_file.read_text())
    # the run's own CPU ledger (report.json) gives the figure of the training, not of the read-back
    assert again["cpu_s"] == round(report["cpu_s"], 1) and "ledger" in again["cpu_note"]
    assert again["student"] == first["student"]
    # a report written before the ledger existed has no cpu_s: the row's CPU time is then unknown, not wrong
    report_file.write_text(json.dumps({k: v for k, v in report.items() if k not in ("cpu_s", "cpu_attempts")}))
    results.write_text("")
    old = recipe_bench.run_distill("sst2", "logits-only", 0, "logits-only", [], args)
    assert old["cpu_s"] is None and "finished before this row was written" in old["cpu_note"]
    assert json.loads(results.read_text())["cpu_s"] is None

    before = {p: p.stat().st_mtime_ns for p in work.rglob("*")}
    code = autodistill_bench.main([*typed, "--tasks", "sst2", "--recipes", "logits-only,minilm", "--evaluate-only"])
    out = capsys.readouterr().out
    assert code == 0 and {p: p.stat().st_mtime_ns for p in work.rglob("*")} == before  # nothing new or rewritten
    assert "sst2      default*" in out and "1 experience records of seeds 0" in out  # one run: the fallback
    assert "(1 runs' CPU time unknown, not counted)" in out
    assert not (work / "runs" / "sst2" / "minilm-s0").exists()  # the missing recipe was not trained
    assert autodistill_bench.main([*typed[:2], "--work", str(tmp_path / "none"), "--evaluate-only"]) == 2
    assert "--evaluate-only needs finished runs" in capsys.readouterr().err


def test_the_ablation_pairs_each_variant_with_the_base_seed_by_seed(recipe_bench):
    base = [{"seed": 0, "student": 0.80}, {"seed": 1, "student": 0.70}, {"seed": 2, "student": 0.75}]
    # a constant gain of 2 points on every seed is clear although the seeds themselves spread by 5 points
    gain = [{"seed": s, "student": b["student"] + 0.02} for s, b in enumerate(base)]
    p = recipe_bench.paired(base, gain)
    assert p["n"] == 3 and p["mean"] == pytest.approx(0.02) and p["sd"] == pytest.approx(0.0, abs=1e-12)
    assert p["clear"] is True and "beyond 2 se" in recipe_bench.fmt_paired(p)
    # the same mean gain from one lucky seed is within noise
    lucky = [{"seed": 0, "student": 0.86}, {"seed": 1, "student": 0.70}, {"seed": 2, "student": 0.75}]
    q = recipe_bench.paired(base, lucky)
    assert q["mean"] == pytest.approx(0.02) and q["clear"] is False and "within noise" in recipe_bench.fmt_paired(q)
    # seeds the base did not run are not paired; one pair gives a difference but no verdict
    one = recipe_bench.paired(base, [{"seed": 0, "student": 0.81}, {"seed": 7, "student": 0.99}])
    assert one["n"] == 1 and one["clear"] is None and recipe_bench.fmt_paired(one) == "+0.0100 (1 seed)"
    assert recipe_bench.fmt_paired(recipe_bench.paired(base, [])) == "-"


def test_agnews_tail_split_holds_out_exactly_what_hwnas_distill_holds_out(recipe_bench, tmp_path):
    """--agnews-eval tail: the students' scoring rows are the rows hwnas distill holds out of the whole file (where a
    teacher fine-tuned on that file was evaluated), so the teacher never scores rows it trained on."""
    from hwnas.distill.api import DistillConfig, load_data

    labels = ["World", "Sports", "Business", "Sci/Tech"]
    src = tmp_path / "data/agnews/train.tsv"
    src.parent.mkdir(parents=True)
    src.write_text("text\tlabel\n" + "".join(f"story number {i} about things\t{labels[i % 4]}\n" for i in range(37)))
    args = argparse.Namespace(data=str(tmp_path / "data"), work=str(tmp_path / "work"), eval_rows=3,
                              agnews_eval="tail")
    train, dev, rows = recipe_bench.task_files("agnews", args)
    assert rows == 3 and dev.endswith("agnews-split/dev.tsv")
    whole_train, whole_eval, _ = load_data(DistillConfig(arch="layers=1,hidden=32,heads=2,ffn=64", task=str(src),
                                                         measure=False))
    split_train = load_data(DistillConfig(arch="layers=1,hidden=32,heads=2,ffn=64", task=train, eval=dev,
                                          measure=False))
    assert split_train[0].texts == whole_train.texts and split_train[1].texts == whole_eval.texts
    assert len(whole_eval.texts) == 3 and not set(whole_eval.texts) & set(whole_train.texts)
    before = (tmp_path / "work/agnews-split/train.tsv").stat().st_mtime_ns
    recipe_bench.task_files("agnews", args)  # written once, then reused
    assert (tmp_path / "work/agnews-split/train.tsv").stat().st_mtime_ns == before
    args.agnews_eval = "holdout"  # the old behaviour: the file itself, hwnas holds out the tail of --limit rows
    assert recipe_bench.task_files("agnews", args) == (str(src), None, None)


def test_two_topic_tasks_are_cut_from_agnews_into_the_work_folder(recipe_bench, tmp_path):
    from hwnas.distill.data import load_task

    labels = ["World", "Sports", "Business", "Sci/Tech"]
    src = tmp_path / "data/agnews/train.tsv"
    src.parent.mkdir(parents=True)
    src.write_text("text\tlabel\n" + "".join(f"story number {i} about things\t{labels[i % 4]}\n" for i in range(80)))
    args = argparse.Namespace(data=str(tmp_path / "data"), work=str(tmp_path / "work"), eval_rows=5)
    train, dev, rows = recipe_bench.task_files("agnews-biz-tech", args)
    assert rows == 5 and dev == str(tmp_path / "work/agnews-biz-tech/dev.tsv")
    both = load_task(train).labels + load_task(dev).labels
    assert load_task(train).label_names == ["Business", "Sci/Tech"] and len(both) == 40
    with pytest.raises(SystemExit, match="agnews-world-sports"):
        recipe_bench.task_files("agnews-sports", args)


def test_recipe_report_only_prints_finished_runs_and_starts_none(recipe_bench, tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    rows = [{"task": "sst2", "variant": v, "seed": s, "student": acc, "teacher": 0.92, "kept": acc / 0.92,
             "cpu_s": 70.0, "wall_s": 80.0}
            for v, s, acc in (("base", 0, 0.80), ("base", 1, 0.78), ("hidden", 0, 0.81), ("hidden", 1, 0.79))]
    (work / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = (work / "results.jsonl").read_text()
    code = recipe_bench.main(["--data", str(tmp_path / "no-data"), "--work", str(work), "--tasks", "sst2",
                              "--seeds", "0,1,2", "--components", "hidden,attention", "--report-only"])
    out = capsys.readouterr().out
    assert code == 0 and not (work / "runs").exists() and (work / "results.jsonl").read_text() == before
    assert "0.7900 ± 0.0141 (2 seeds)" in out  # base over its two finished seeds
    hidden = next(line for line in out.splitlines() if line.startswith("hidden (toggled)"))
    assert "+0.0100 ± 0.0000 (2 seeds, beyond 2 se)" in hidden
    assert "attention" not in out.split("vs base")[1]  # no finished run: no line
