"""``hwnas run`` on a tiny configuration: every stage runs, writes its artefact, and a second run reuses them."""

from __future__ import annotations

import json

import pytest

from hwnas.pipeline import STAGES, RunConfig, choose_space, estimate_seconds, quick_config, run_pipeline


@pytest.fixture(scope="module")
def small_teacher(tmp_path_factory):
    """A 3-layer, 192-wide random BertModel with the default teacher's tokenizer: as wide as space ``tiny``."""
    import torch
    from transformers import AutoTokenizer, BertModel

    from hwnas.distill.models import resolve_teacher
    from hwnas.space import Architecture

    folder = tmp_path_factory.mktemp("teacher")
    tok = AutoTokenizer.from_pretrained(resolve_teacher("default"))
    torch.manual_seed(0)
    BertModel(Architecture(3, 192, 4, 768).to_bert_config(vocab_size=tok.vocab_size, max_position_embeddings=512)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def first_run(small_teacher, tmp_path_factory):
    work = tmp_path_factory.mktemp("runs")
    # a generous budget: the test checks the pipeline, not what fits on a busy machine. ONNX Runtime at
    # sequence 64: every stage must profile, search and verify on that device at that length.
    config = quick_config(10_000.0, work_dir=str(work), name="t", teacher=str(small_teacher), profile_samples=6,
                          device="onnxruntime", seq_len=64)
    events = []
    summary = run_pipeline(config, on_progress=events.append, on_status=lambda line: None)
    return config, summary, events


def test_every_stage_writes_its_artefact(first_run):
    config, summary, events = first_run
    f = config.folder
    for path in ("profile.jsonl", "predictor.hwnas", "supernet/supernet.json", "supernet/model.safetensors",
                 "search/front.json", "search/evaluated.csv", "search/winner.json", "search/config.json", "search/front.png",
                 "student/config.json", "student/model.safetensors", "student/model.onnx", "student/tokenizer.json",
                 "student/report.json", "summary.json"):
        assert (f / path).is_file(), path
    assert [s.name for s in summary.stages] == ["profile", "predictor", "supernet", "search", "distill", "verify"]
    assert all(s.status == "ran" for s in summary.stages)
    # every stage ends with one full event (completed == total == 1); the stages report their own counts before it
    ends = [e.stage for e in events if (e.completed, e.total) == (1, 1)]
    assert [s for s in ends if s in STAGES] == list(STAGES)
    profiled = [e for e in events if e.stage == "profile" and e.total == 6]
    assert [e.completed for e in profiled] == [0, 1, 2, 3, 4, 5, 6]
    searched = [e.completed for e in events if e.stage == "search" and e.total == config.search_evaluations]
    assert searched[-1] == config.search_evaluations and searched == sorted(searched)
    assert {"teacher", "distill"} <= {e.stage for e in events if e.total and e.total > 1}
    assert len((f / "profile.jsonl").read_text().splitlines()) == 6


def test_student_is_the_winner_from_the_supernet_and_verified(first_run):
    from transformers import AutoModelForSequenceClassification

    from hwnas.space import get_space

    config, _, _ = first_run
    winner = json.loads((config.folder / "search" / "winner.json").read_text())
    report = json.loads((config.folder / "student" / "report.json").read_text())
    assert report["arch"] == winner["arch"] and get_space("tiny").validate(report["arch_key"])
    assert report["init"].startswith("encoder from supernet")
    assert report["exports"]["onnx"]["max_abs_diff"] <= report["exports"]["onnx"]["atol"]
    assert report["predicted_latency"]["latency_ms"] > 0 and report["measured_latency"]["student"]["latency_ms"] > 0
    saved = json.loads((config.folder / "summary.json").read_text())
    assert saved["within_budget"] is True and saved["winner"]["arch"] == winner["arch"]
    # verified where it was searched: ONNX Runtime running the exported model.onnx, at sequence 64
    assert (winner["device"], winner["seq_len"], winner["batch_size"]) == ("onnxruntime", 64, 1)
    m = report["measured_latency"]
    assert (m["device"], m["seq_len"], m["batch_size"], m["threads"], m["dtype"], m["clock"]) == \
        ("onnxruntime", 64, 1, 1, "fp32", "wall")
    assert m["student"]["measured"] == "exported model.onnx (ONNX Runtime) on onnxruntime"
    assert report["predicted_latency"]["seq_len"] == 64
    v = saved["verification"]
    assert (v["device"], v["seq_len"], v["batch_size"]) == ("onnxruntime", 64, 1)
    # the profile's reference was timed again beside the student: the drift and both verdicts are reported
    assert v["drift"]["reference_arch"] and v["drift"]["reference_ms_now"] > 0 and v["drift"]["speed_vs_profile"] > 0
    assert v["within_budget_normalised"] is True and v["verdicts_agree"] is True and v["verdict"]
    assert all(r["clock"] == "wall" and r["reference_ms"] > 0 and r["seq_len"] == 64
               for r in map(json.loads, (config.folder / "profile.jsonl").read_text().splitlines()))
    model = AutoModelForSequenceClassification.from_pretrained(config.folder / "student")
    assert model.config.num_hidden_layers == winner["arch"]["layers"] and model.config.hidden_size == winner["arch"]["hidden"]


def test_second_run_reuses_every_stage(first_run):
    config, first, _ = first_run
    before = {p: p.stat().st_mtime_ns for p in config.folder.rglob("*") if p.is_file() and p.name not in ("summary.json", "report.html")}
    assert sum(estimate_seconds(config)[k] for k in ("profile", "predictor", "supernet", "search", "distill")) == 0
    again = run_pipeline(config)
    assert [s.status for s in again.stages[:5]] == ["reused"] * 5
    after = {p: p.stat().st_mtime_ns for p in config.folder.rglob("*") if p.is_file() and p.name not in ("summary.json", "report.html")}
    assert after == before  # nothing rewritten
    assert again.report["arch_key"] == first.report["arch_key"]


def test_space_follows_the_budget():
    assert choose_space(5.0) == "tiny" and choose_space(20.0) == "small"
    assert RunConfig(max_latency_ms=5).folder.name == "cpu-5ms"
    est = estimate_seconds(RunConfig(max_latency_ms=5, work_dir="/nonexistent-hwnas"))
    assert all(v > 0 for v in est.values())


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--max-latency", "fast"], "--max-latency must be a number with a unit"),
        (["run", "--max-latency", "5ms", "--space", "huge"], "unknown space 'huge'"),
        (["run", "--max-latency", "5ms", "--device", "abacus"], "abacus"),
        (["run", "--max-latency", "5ms", "--samples", "0"], "--samples must be an integer >= 1"),
        (["run", "--max-latency", "5ms", "--device", "tpu"], "device 'tpu' is not available here"),
        (["run", "--max-latency", "5ms", "--seq-len", "0"], "--seq-len must be an integer >= 1"),
    ],
)
def test_cli_rejects_bad_input_with_one_line(args, message, tmp_path, capsys):
    from hwnas.cli.main import main

    with pytest.raises(SystemExit) as info:
        main([*args, "--work-dir", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing was started


def _supernet_reports_progress() -> bool:
    import inspect

    from hwnas.supernet.train import train_supernet

    return "on_progress" in inspect.signature(train_supernet).parameters


@pytest.mark.skipif(not _supernet_reports_progress(),
                    reason="needs train_supernet(on_progress=) from issue 10's training stack (item 1)")
def test_supernet_stage_reports_steps_and_checkpoints(first_run):
    config, _, events = first_run
    steps = [e for e in events if e.stage == "supernet" and e.total == config.supernet_steps]
    assert [e.completed for e in steps][-1] == config.supernet_steps
    assert [e.completed for e in steps] == sorted(e.completed for e in steps)
    assert any(e.checkpoint for e in steps) and all("loss" in e.metrics for e in steps if e.completed)
