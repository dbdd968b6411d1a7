"""bench/ground_truth/run.py keeps one teacher per task: a student whose teacher is another one (fine-tuned again on
a fresh machine) is refused, checked on the committed table's own rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.estimators.conftest import load_bench

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def gt():
    return load_bench("gt_run", "ground_truth/run.py")


def test_a_student_of_another_teacher_is_refused_and_the_same_teacher_passes(gt):
    rows = gt.read_table(ROOT / "bench/ground_truth/table.csv")
    sst2 = next(r for r in rows.values() if r["task"] == "sst2")
    same = {**sst2, "seed": "2"}
    assert gt.teacher_mismatch(rows, same) is None
    other = {**sst2, "teacher_accuracy": "0.90100"}
    problem = gt.teacher_mismatch(rows, other)
    assert problem is not None and "scored 0.90100" in problem and sst2["teacher_accuracy"] in problem
    assert "not added" in problem.format(work="bench/out/ground_truth")
    # a task the table has no row of yet starts with whatever teacher it gets
    assert gt.teacher_mismatch(rows, {**sst2, "task": "news", "teacher_accuracy": "0.75000"}) is None
    # each task is compared with its own rows only
    agnews = next(r for r in rows.values() if r["task"] == "agnews")
    assert gt.teacher_mismatch(rows, {**agnews, "seed": "1"}) is None
    assert gt.teacher_mismatch(rows, {**agnews, "teacher_accuracy": sst2["teacher_accuracy"]}) is not None
