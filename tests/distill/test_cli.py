"""``hwnas distill`` from the command line: a real run on a tiny teacher, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from hwnas.data import embedded_path
from tests.cli_run import run_cli as _run


def test_distill_command_writes_student(tiny_teacher, tmp_path, capsys):
    out = tmp_path / "student"
    code, stdout, err = _run(["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")),
                              "--teacher", str(tiny_teacher), "--out", str(out), "--limit", "60", "--steps", "3",
                              "--teacher-steps", "3", "--batch-size", "8", "--max-len", "24", "--no-measure", "--quiet",
                              "--losses", "logits=1,value_relation=0.5", "--temperature", "3"], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["losses"]["weights"] == {"logits": 1.0, "value_relation": 0.5} and report["losses"]["temperature"] == 3
    assert "held out" in report["eval"]["note"] and report["eval"]["examples"] == 6
    assert "layers=1,hidden=32,heads=2,ffn=64" in stdout and (out / "model.onnx").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--losses", "logits=1,dark_knowledge=2"], "unknown loss 'dark_knowledge'"),
        (["--arch", "layers=2,hidden=100,heads=3,ffn=64"], "heads must divide hidden"),
        (["--task", "MISSING.tsv"], "MISSING.tsv: no such file"),
        (["--steps", "0"], "steps must be an integer >= 1; got 0"),
        (["--device", "tpu"], "device 'tpu' is not available here"),
        (["--seq-len", "0"], "--seq-len must be an integer >= 1; got 0"),
    ],
)
def test_distill_bad_input_is_one_line_and_exit_2(extra, message, tmp_path, capsys):
    args = {"--arch": "L1-H32-A2-I64", "--task": str(embedded_path("sst2/train.tsv")), "--out": str(tmp_path / "s")}
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        args[flag] = value
    argv = ["distill", *[x for kv in args.items() for x in kv], "--quiet"]
    code, _, err = _run(argv, capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_distill_bad_data_row_names_file_and_row(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood film\t1\nbad film\tnegative\n")
    code, _, err = _run(["distill", "--arch", "L1-H32-A2-I64", "--task", str(bad), "--out", str(tmp_path / "s"),
                         "--quiet"], capsys)
    assert code == 2 and "bad.tsv, row 3: label 'negative' is not a number" in err


def test_a_winner_file_without_device_or_shape_is_refused_before_training(tmp_path, capsys):
    winner = tmp_path / "winner.json"
    winner.write_text(json.dumps({"arch": {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64}, "budget_ms": 5.0}))
    out = tmp_path / "s"
    code, _, err = _run(["distill", "--arch", str(winner), "--task", str(embedded_path("sst2/train.tsv")),
                         "--out", str(out), "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "records no device, seq_len, batch_size" in err and "--device and --seq-len" in err
    assert not out.exists()  # refused before anything was written


def test_a_checkpoint_from_before_the_shared_loop_is_one_line_and_exit_2(tiny_teacher, tmp_path, capsys):
    from tests.training.legacy_checkpoints import (
        old_distill_save_checkpoint,
        trained_tiny,
    )

    out = tmp_path / "student"
    model, opt = trained_tiny()
    old_distill_save_checkpoint(out / "checkpoint", model, opt, 2, {"train_config": {}})
    code, _, err = _run(["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")),
                         "--teacher", str(tiny_teacher), "--out", str(out), "--limit", "40", "--steps", "2",
                         "--teacher-steps", "1", "--batch-size", "8", "--max-len", "16", "--no-measure", "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "student/checkpoint is a checkpoint in the format of hwnas releases before" in err
    assert (out / "checkpoint" / "state.safetensors").is_file()  # refused, not deleted
    assert not (tmp_path / "teachers").exists()  # refused before the teacher was fine-tuned
