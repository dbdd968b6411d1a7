"""bench/_ledger.py: finished bench runs kept in a committed file and taken back on a fresh machine, only when the
teacher's weights are the very same (real files; the recipe bench's case runs a real ``hwnas distill`` subprocess on a
tiny teacher)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from hwnas.data import embedded_path
from hwnas.distill.data import load_task
from hwnas.distill.teacher import finetune_teacher
from hwnas.distill.trainer import TrainConfig
from tests.distill.conftest import tiny_teacher  # noqa: F401  (the fixture, used by the slow case)
from tests.estimators.conftest import load_bench


@pytest.fixture(scope="module")
def ledger_mod():
    return load_bench("_ledger")


def _key(row):
    return row["task"], row["variant"], row["seed"]


def _weights(folder: Path, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(content)
    return folder


def test_rows_are_carried_only_to_the_same_teacher_weights_and_copied_out_once(ledger_mod, tmp_path):
    same = ledger_mod.weights_sha256(_weights(tmp_path / "teacher", b"weights-A"))
    other = ledger_mod.weights_sha256(_weights(tmp_path / "other", b"weights-B"))
    assert same != other and len(same) == 64
    assert ledger_mod.weights_sha256(tmp_path / "no-such-folder") is None
    ledger, results = tmp_path / "bench" / "ledger.jsonl", tmp_path / "work" / "results.jsonl"
    rows = [{"task": "sst2", "variant": "base", "seed": 0, "student": 0.80, "teacher_sha256": same},
            {"task": "sst2", "variant": "base", "seed": 1, "student": 0.79, "teacher_sha256": other},
            {"task": "agnews", "variant": "base", "seed": 0, "student": 0.60, "teacher_sha256": same}]
    for row in rows:
        assert ledger_mod.record(ledger, {**row, "reused": True}, _key)
    assert not ledger_mod.record(ledger, rows[0], _key)  # already there: not written twice
    assert not ledger_mod.record(ledger, {"task": "sst2", "variant": "x", "seed": 0}, _key)  # no teacher hash
    assert "reused" not in ledger_mod.read_jsonl(ledger)[0]  # a per-attempt field stays local
    # a local row the ledger lacks (with its teacher known) is copied out; the agnews teacher is unknown here
    local = {"task": "sst2", "variant": "logits", "seed": 0, "student": 0.33, "teacher_sha256": same}
    ledger_mod.append_jsonl(results, local)
    carried = []
    counts = ledger_mod.carry_in(ledger, results, _key, {"sst2": same, "agnews": None}, on_carry=carried.append)
    assert counts == {"carried": 1, "other_teacher": 2, "recorded": 1}
    assert [_key(r) for r in carried] == [("sst2", "base", 0)]
    got = ledger_mod.read_jsonl(results)
    assert [_key(r) for r in got] == [("sst2", "logits", 0), ("sst2", "base", 0)]
    assert got[1]["carried_from"] == str(ledger) and got[1]["student"] == 0.80
    assert _key(local) in {_key(r) for r in ledger_mod.read_jsonl(ledger)}
    line = ledger_mod.say(counts, ledger)
    assert "1 finished run(s) taken" in line and "2 left out" in line and "1 copied into it" in line
    # again: nothing new either way
    assert ledger_mod.carry_in(ledger, results, _key, {"sst2": same}) == {"carried": 0, "other_teacher": 2,
                                                                          "recorded": 0}
    assert ledger_mod.carry_in(None, results, _key, {"sst2": same}) == {"carried": 0, "other_teacher": 0,
                                                                        "recorded": 0}


def test_a_torn_last_line_is_skipped_with_a_warning_not_fatal(ledger_mod, tmp_path, capsys):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps({"task": "sst2", "variant": "base", "seed": 0}) + '\n{"task": "sst2", "var')
    assert [_key(r) for r in ledger_mod.read_jsonl(ledger)] == [("sst2", "base", 0)]
    assert f"{ledger}:2: not a JSON line, skipped" in capsys.readouterr().err


@pytest.mark.slow
def test_the_recipe_bench_takes_a_finished_run_back_on_a_fresh_work_folder(tiny_teacher, tmp_path):  # noqa: F811
    recipe_bench = load_bench("bench_recipe")
    data = tmp_path / "data"
    shutil.copytree(embedded_path("sst2/train.tsv").parent, data / "sst2")
    ledger = tmp_path / "committed" / "ledger.jsonl"
    typed = ["--data", str(data), "--arch", "L1-H32-A2-I64", "--steps", "3", "--batch-size", "8", "--max-len", "24",
             "--limit", "60", "--eval-rows", "40", "--ledger", str(ledger)]
    ap = argparse.ArgumentParser()
    recipe_bench.common_args(ap)
    # a ready fine-tuned teacher (two steps on the task), as --teacher-for gives the benches
    ready = finetune_teacher(tiny_teacher, load_task(data / "sst2/train.tsv").head(32), None,
                             TrainConfig(steps=2, batch_size=8, lr=1e-4, max_len=24, seed=0), tmp_path / "teachers",
                             max_len=24).path
    args = ap.parse_args([*typed, "--work", str(tmp_path / "a"), "--teacher-for", f"sst2={ready}"])
    row = recipe_bench.run_distill("sst2", "logits-only", 1, "logits-only", [], args)
    assert row["teacher_sha256"] is not None and len(row["experience"]) == 1
    in_ledger = [r for r in recipe_bench._ledger.read_jsonl(ledger) if r["seed"] == 1]
    assert len(in_ledger) == 1 and in_ledger[0]["student"] == row["student"]
    assert in_ledger[0]["teacher_sha256"] == recipe_bench._ledger.weights_sha256(ready)

    # a fresh machine: an empty work folder with the same teacher weights (a copy) takes the run, starting nothing
    copy = shutil.copytree(ready, tmp_path / "fresh-teacher")
    fresh = ap.parse_args([*typed, "--work", str(tmp_path / "b"), "--teacher-for", f"sst2={copy}"])
    recipe_bench.carry_ledger(fresh)
    again = recipe_bench.run_distill("sst2", "logits-only", 1, "logits-only", [], fresh)
    assert again["reused"] and again["student"] == row["student"] and again["carried_from"] == str(ledger)
    assert not (tmp_path / "b" / "runs").exists()  # no hwnas distill was started
    restored = recipe_bench._ledger.read_jsonl(tmp_path / "b" / "experience.jsonl")
    assert restored == row["experience"]  # the AutoDistiller's record of the run came with it

    # other teacher weights: nothing is carried, the run would start again
    other = shutil.copytree(ready, tmp_path / "other-teacher")
    blob = bytearray((other / "model.safetensors").read_bytes())
    blob[-1] ^= 1
    (other / "model.safetensors").write_bytes(bytes(blob))
    elsewhere = ap.parse_args([*typed, "--work", str(tmp_path / "c"), "--teacher-for", f"sst2={other}"])
    recipe_bench.carry_ledger(elsewhere)
    assert recipe_bench.finished_row(tmp_path / "c", "sst2", "logits-only", 1) is None
    assert recipe_bench.ledger_row(str(ledger), ("sst2", "logits-only", 1))["student"] == row["student"]
