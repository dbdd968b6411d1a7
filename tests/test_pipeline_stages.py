"""Each stage of ``hwnas run`` alone, on tiny inputs: what it writes, when it counts as done, what it reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hwnas.errors import PredictorMismatch
from hwnas.pipeline import (
    PredictorStage,
    ProfileStage,
    RunContext,
    Stage,
    SupernetStage,
    VerifyStage,
    build_stages,
    check_predictor,
    quick_config,
    run_stage,
)
from hwnas.progress import ProgressEvent

PROFILE = Path(__file__).parent / "predictors" / "data" / "cpu-tiny.jsonl"


def _context(tmp_path, **overrides):
    events: list[ProgressEvent] = []
    lines: list[str] = []
    config = quick_config(5.0, work_dir=str(tmp_path), name="run", **overrides)
    config.folder.mkdir(parents=True)
    return RunContext(config, on_progress=events.append, on_status=lines.append), events, lines


@pytest.mark.slow
def test_profile_stage_alone_measures_then_resumes(tmp_path):
    ctx, events, _ = _context(tmp_path, profile_samples=3, seq_len=32)
    stage = ProfileStage(ctx)
    assert not stage.done()
    status, detail = stage.run()
    records = [json.loads(line) for line in stage.output.read_text().splitlines()]
    assert status == "ran" and len(records) == 3 and detail.startswith("3 architectures")
    ticks = [e for e in events if e.stage == "profile"]
    assert [e.completed for e in ticks] == [0, 1, 2, 3] and {e.total for e in ticks} == {3}
    assert [e.metrics["latency_ms"] for e in ticks[1:]] == [r["latency_ms"] for r in records]
    # the profile alone does not make the stage done (the predictor does); a second run measures nothing
    assert not stage.done()
    assert stage.run() == ("resumed", "3 architectures (all reused)")
    assert len(stage.output.read_text().splitlines()) == 3


@pytest.mark.slow
def test_predictor_stage_alone_fits_and_then_is_done(tmp_path):
    ctx, _, _ = _context(tmp_path, seq_len=128)
    stage = PredictorStage(ctx)
    shutil.copy(PROFILE, ctx.folder / "profile.jsonl")
    assert not stage.done() and not ProfileStage(ctx).done()
    status, detail = stage.run()
    assert status == "ran" and "cross-validated" in detail and stage.output.is_file()
    assert stage.done() and ProfileStage(ctx).done()  # a fitted predictor makes profiling unnecessary
    check_predictor(ctx)  # profiled on cpu, asked for cpu: accepted
    other, _, _ = _context(tmp_path / "other", device="onnxruntime", predictor=str(stage.output))
    with pytest.raises(PredictorMismatch, match="onnxruntime"):
        check_predictor(other)


def test_supernet_stage_is_done_when_trained_to_the_requested_steps(tmp_path):
    ctx, _, _ = _context(tmp_path, supernet_steps=4)
    stage = SupernetStage(ctx)
    assert not stage.done()
    (ctx.folder / "supernet").mkdir()
    (ctx.folder / "supernet" / "supernet.json").write_text(json.dumps({"steps_done": 3}))
    assert not stage.done()
    (ctx.folder / "supernet" / "supernet.json").write_text(json.dumps({"steps_done": 4}))
    assert stage.done()
    (ctx.folder / "supernet" / "supernet.json").write_text("{not json")
    assert not stage.done()
    given, _, _ = _context(tmp_path / "given", supernet=str(tmp_path / "elsewhere"))
    assert SupernetStage(given).done()


def _report(measured_ms: float) -> dict:
    return {
        "measured_latency": {
            "device": "cpu", "dtype": "fp32", "threads": 1, "clock": "wall", "seq_len": 128, "batch_size": 1,
            "student": {"latency_ms": measured_ms, "measured": "exported model.onnx"},
            "drift": {"reference_arch": "L2-H128-A2-I512", "reference_ms_now": 1.1, "reference_ms_profiled": 1.0},
            "student_normalised_ms": measured_ms / 1.1,
        },
        "predicted_latency": {"latency_ms": 4.2},
    }


@pytest.mark.parametrize("measured_ms, within, word", [(4.0, True, "within"), (5.4, False, "OVER")])
def test_verify_stage_alone_judges_the_measured_student(tmp_path, measured_ms, within, word):
    ctx, _, lines = _context(tmp_path)
    ctx.summary.report = _report(measured_ms)
    status, detail = VerifyStage(ctx).run()
    v = ctx.summary.verification
    assert status == "ran" and ctx.summary.within_budget is within and v["within_budget"] is within
    assert detail.startswith(f"measured {measured_ms:.2f} ms on cpu at seq 128 ({word} the 5 ms budget")
    # drift-normalised: 5.4 / 1.1 = 4.91 ms is within the budget even when the raw figure is not
    assert v["within_budget_normalised"] is True and v["normalised_ms"] == pytest.approx(measured_ms / 1.1)
    assert v["verdicts_agree"] is within and any(line.startswith("verify: ") for line in lines)


def test_verify_stage_without_a_measurement_says_so(tmp_path):
    ctx, _, _ = _context(tmp_path)
    ctx.summary.report = {}
    assert VerifyStage(ctx).run() == ("ran", "not measured")
    assert ctx.summary.within_budget is None and ctx.summary.verification is None


def test_run_stage_reuses_a_done_stage_and_records_both(tmp_path):
    ctx, events, lines = _context(tmp_path)
    calls = []

    class Made(Stage):
        name = "made"

        @property
        def output(self):
            return self.ctx.folder / "made.txt"

        def done(self):
            return self.output.is_file()

        def run(self):
            calls.append("run")
            self.output.write_text("x")
            return "ran", "made it"

        def reuse(self):
            return "found it"

    first, second = run_stage(Made(ctx)), run_stage(Made(ctx))
    assert (first.status, first.detail, second.status, second.detail) == ("ran", "made it", "reused", "found it")
    assert calls == ["run"] and [s.name for s in ctx.summary.stages] == ["made", "made"]
    assert [(e.stage, e.completed, e.total) for e in events] == [("made", 1, 1)] * 2
    assert lines == ["made: ran (made it)", "made: reused (found it)"]


def test_a_stage_without_run_cannot_be_built(tmp_path):
    class Incomplete(Stage):
        name = "incomplete"

        @property
        def output(self):
            return Path("x")

        def done(self):
            return False

    ctx, _, _ = _context(tmp_path)
    with pytest.raises(TypeError, match="abstract"):
        Incomplete(ctx)


def test_stages_run_in_the_documented_order(tmp_path):
    ctx, _, _ = _context(tmp_path)
    assert [s.name for s in build_stages(ctx)] == ["profile", "predictor", "supernet", "search", "distill", "verify"]
    assert [s.output.relative_to(ctx.folder).as_posix() for s in build_stages(ctx)] == [
        "profile.jsonl", "predictor.hwnas", "supernet", "search/winner.json", "student", "summary.json"]
