"""The experience table: format, concurrent appends from real processes, and one-line refusals of a corrupt table or
one from a newer hwnas (at the command line: exit 2 before anything is trained, --out untouched)."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from hwnas.cli.main import main
from hwnas.data import embedded_path
from hwnas.distill.experience import (SCHEMA_VERSION, SEED_TABLE, append_record, default_table, make_record,
                                      read_table)
from hwnas.errors import InvalidData
from hwnas.outputs import write_marker


def _record(i: int = 0, kept_student: float = 0.8):
    return make_record(recipe_name="default", settings={"steps": 100 + i}, features={"num_labels": 2.0},
                       arch={"layers": 2, "hidden": 128, "heads": 2, "ffn": 512}, metric="accuracy",
                       student=kept_student, teacher=0.9, steps=100, task_id="abc", source="/x/train.tsv")


def test_a_record_round_trips_with_its_schema_and_kept_fraction(tmp_path):
    table = tmp_path / "deep" / "exp.jsonl"
    append_record(table, _record())
    rows = read_table(table)
    assert len(rows) == 1 and rows[0]["schema"] == SCHEMA_VERSION
    assert rows[0]["result"]["kept"] == pytest.approx(0.8 / 0.9) and rows[0]["task"]["source"] == "train.tsv"


def _append_many(path: str, start: int, n: int) -> None:
    for i in range(start, start + n):
        append_record(path, _record(i))


def test_two_processes_appending_at_once_never_interleave(tmp_path):
    table = str(tmp_path / "exp.jsonl")
    ctx = mp.get_context("fork")  # real processes; the appends use only os and json
    procs = [ctx.Process(target=_append_many, args=(table, k * 1000, 150)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = read_table(table)
    assert sorted(r["recipe"]["settings"]["steps"] for r in rows) == sorted(
        [100 + i for i in range(150)] + [100 + 1000 + i for i in range(150)])


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path):
    table = tmp_path / "exp.jsonl"
    table.write_text('{"schema": 1, "recipe"')  # a writer killed mid-line
    append_record(table, _record())
    lines = table.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["schema"] == SCHEMA_VERSION
    with pytest.raises(InvalidData, match="exp.jsonl, line 1: not valid JSON"):
        read_table(table)


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: not valid JSON (a corrupt experience table"),
    ('{"schema": 7, "recipe": {}}', "line 2: written by a newer hwnas (experience schema 7; this version reads up to 2)"),
    ('{"schema": 1, "recipe": {}}', "line 2: missing or malformed 'features'"),
    ("[1, 2]", "line 2: not a JSON object"),
])
def test_corrupt_or_newer_tables_are_one_line(line, message, tmp_path):
    table = tmp_path / "exp.jsonl"
    append_record(table, _record())
    with table.open("a") as fh:
        fh.write(line + "\n")
    with pytest.raises(InvalidData) as info:
        read_table(table)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_default_table_follows_hwnas_home_then_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path / "home"))
    assert default_table() == tmp_path / "home" / "experience.jsonl"
    monkeypatch.delenv("HWNAS_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_table() == tmp_path / "cache" / "hwnas" / "experience.jsonl"


def test_the_shipped_seed_table_is_readable():
    rows = read_table(SEED_TABLE, missing_ok=False)
    assert rows and all(r["result"]["kept"] is not None for r in rows)


@pytest.mark.parametrize("content, message", [
    ("{broken\n", "line 1: not valid JSON"),
    ('{"schema": 3, "recipe": {}}\n', "written by a newer hwnas (experience schema 3"),
])
def test_cli_refuses_a_bad_table_before_training_and_keeps_out(content, message, tmp_path, capsys):
    table = tmp_path / "exp.jsonl"
    table.write_text(content)
    out = tmp_path / "student"
    out.mkdir()
    write_marker(out, "distill")
    (out / "model.safetensors").write_bytes(b"trained before")
    with pytest.raises(SystemExit) as info:
        main(["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")), "--out", str(out),
              "--experience", str(table), "--no-measure", "--quiet"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert (out / "model.safetensors").read_bytes() == b"trained before" and table.read_text() == content
