"""The task teacher trained by whole epochs by default: step count, evaluation, cache keys, time taken, and the
quick start's note on what a full teacher gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwnas.cli.main import main
from hwnas.data import embedded_path
from hwnas.distill.api import DistillConfig, teacher_eval_every, teacher_steps_for, teacher_train_config
from hwnas.distill.teacher import FULL_TEACHER_RESULT, full_teacher_note

ROOT = Path(__file__).resolve().parents[2]


def _config(**kw):
    return DistillConfig(arch="layers=1,hidden=32,heads=2,ffn=64", task="unused.tsv", measure=False, **kw)


def test_one_epoch_is_the_full_batches_of_the_training_data_unless_steps_are_given():
    assert teacher_steps_for(_config(), 60_614) == 60_614 // 32
    assert teacher_steps_for(_config(teacher_epochs=3, batch_size=16), 1000) == 3 * 1000 // 16
    assert teacher_steps_for(_config(), 5) == 1  # fewer examples than a batch: still one step
    assert teacher_steps_for(_config(teacher_steps=77, teacher_epochs=4), 60_614) == 77


def test_an_evaluation_interval_past_the_last_step_is_recorded_as_none_so_cache_keys_stay():
    assert teacher_eval_every(_config(teacher_steps=200)) == 0
    assert teacher_eval_every(_config(teacher_steps=200, teacher_eval_every=200)) == 0
    assert teacher_eval_every(_config(teacher_steps=600, teacher_eval_every=200)) == 200
    assert teacher_eval_every(_config(), 100) == 0 and teacher_eval_every(_config(), 1894) == 200
    # the quick start (200 steps) keeps the key it had before evaluation became a default
    quick = teacher_train_config(_config(teacher_steps=200), 3600).to_dict()
    assert quick["eval_every"] == 0 and "keep_best" not in quick


def test_the_default_teacher_settings_are_those_of_the_recorded_one_epoch_run_so_its_cache_is_reused():
    recorded = json.loads((ROOT / FULL_TEACHER_RESULT["file"]).read_text())
    cfg = teacher_train_config(_config(max_len=64), 60_614)  # sst2/train.tsv holds 60,614 rows
    assert cfg.to_dict() == recorded["train_config"]
    # and the figure the quick start cites is the one in that file
    assert round(recorded["accuracy"], 4) == FULL_TEACHER_RESULT["accuracy"]
    assert recorded["train_config"]["steps"] == FULL_TEACHER_RESULT["steps"]
    note = full_teacher_note(200)
    assert "200 steps" in note and "0.9305" in note and FULL_TEACHER_RESULT["file"] in note


def test_old_command_lines_with_teacher_steps_record_the_settings_they_always_did():
    d = _config(teacher_steps=600).to_dict()
    assert d["teacher_steps"] == 600 and "teacher_eval_every" not in d and "teacher_epochs" not in d
    by_epochs = _config().to_dict()
    assert by_epochs["teacher_steps"] is None and by_epochs["teacher_epochs"] == 1 and by_epochs["teacher_eval_every"] == 200


@pytest.mark.parametrize("kw, message", [({"teacher_epochs": 0}, "teacher_epochs must be an integer >= 1"),
                                         ({"teacher_steps": 0}, "teacher_steps must be an integer >= 1")])
def test_bad_epoch_settings(kw, message):
    from hwnas.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match=message):
        _config(**kw)


def test_distill_fine_tunes_the_teacher_for_whole_epochs_and_reports_the_time(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "student"
    with pytest.raises(SystemExit) as info:
        main(["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")), "--limit", "80",
              "--teacher", str(tiny_teacher), "--out", str(out), "--steps", "2", "--teacher-epochs", "2",
              "--teacher-eval-every", "5", "--batch-size", "8", "--max-len", "24", "--no-measure", "--no-experience"])
    printed = capsys.readouterr()
    assert info.value.code == 0, printed.err
    report = json.loads((out / "report.json").read_text())
    ft = report["teacher"]["fine_tune"]
    n_train = 80 - 8  # the last 10% are held out for evaluation
    assert ft["steps"] == 2 * n_train // 8 and ft["epochs"] == 2 and ft["eval_every"] == 5 and ft["bucketed"]
    assert ft["train_s"] > 0 and ft["cpu_s"] > 0
    assert [c["step"] for c in ft["curve"]] == [5, 10, 15]  # evaluations before the last step
    teacher_json = json.loads((Path(report["teacher"]["path"]) / "teacher.json").read_text())
    assert teacher_json["epochs"] == 2 and teacher_json["train_s"] == ft["train_s"]
    assert "teacher fine-tune" in printed.out and f"{ft['steps']} steps (2 epochs)" in printed.out


def test_the_quick_start_summary_says_what_a_whole_epoch_teacher_gives(capsys):
    from types import SimpleNamespace

    from hwnas.cli.run import _print_summary

    report = {"arch_key": "layers=1,hidden=32,heads=2,ffn=64", "metric": "accuracy", "student_score": 0.79,
              "teacher_score": 0.87, "retained": 0.79 / 0.87, "parameters": 1000,
              "teacher": {"fine_tune": {"steps": 200, "epochs": None}}}
    summary = SimpleNamespace(folder="runs/x", stages=[], report=report, verification=None, wall_s=1.0)
    _print_summary(summary)
    printed = " ".join(capsys.readouterr().out.split())
    assert "fine-tuned for only 200 steps" in printed and "0.9305" in printed and "--teacher-epochs 1" in printed
    report["teacher"]["fine_tune"]["epochs"] = 1  # a whole-epoch teacher: nothing to add
    _print_summary(summary)
    assert "fine-tuned for only" not in capsys.readouterr().out
