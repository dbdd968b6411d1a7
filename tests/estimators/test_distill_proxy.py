"""distill-proxy: a few steps of the distillation recipe from a fine-tuned teacher (real tiny models)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.errors import InvalidConfig, InvalidData
from hwnas.estimators import make_estimator
from hwnas.estimators.distill_proxy import METRICS
from hwnas.space import Architecture

ARCHS = [Architecture(1, 32, 2, 64), Architecture(2, 48, 4, 96)]
CHEAP = {"steps": 3, "batch_size": 4, "max_len": 16}


def _make(est_task, teacher, tmp_path, **kw):
    return make_estimator("distill-proxy", task=str(est_task), teacher=str(teacher),
                          cache=str(tmp_path / "runs.json"), **(CHEAP | kw))


def test_one_run_records_every_metric_and_they_are_in_range(est_task, est_task_teacher, tmp_path):
    est = _make(est_task, est_task_teacher, tmp_path)
    recs = est.metrics(ARCHS)
    for rec in recs:
        assert set(METRICS) <= set(rec)
        assert 0 <= rec["accuracy"] <= 1 and 0 <= rec["agreement"] <= 1
        assert rec["kd"] <= 0  # minus a KL divergence
        assert rec["cpu_s"] > 0
    np.testing.assert_array_equal(est.score(ARCHS), [r["accuracy"] for r in recs])
    saved = json.loads((tmp_path / "runs.json").read_text())
    assert saved["signature"] == est.signature and set(saved["runs"]) == {a.key for a in ARCHS}


def test_another_metric_reads_the_same_runs_without_training(est_task, est_task_teacher, tmp_path, monkeypatch):
    first = _make(est_task, est_task_teacher, tmp_path)
    recs = first.metrics(ARCHS)
    from hwnas.estimators.distill_proxy import DistillProxy

    def no_training(self, arch):
        raise AssertionError(f"{arch.key} was trained again")

    monkeypatch.setattr(DistillProxy, "_run", no_training)
    for metric in METRICS:
        again = _make(est_task, est_task_teacher, tmp_path, metric=metric)
        np.testing.assert_array_equal(again.score(ARCHS), [r[metric] for r in recs])


def test_other_settings_are_another_cache_entry(est_task, est_task_teacher, tmp_path):
    a = _make(est_task, est_task_teacher, tmp_path)
    b = _make(est_task, est_task_teacher, tmp_path, steps=4)
    c = _make(est_task, est_task_teacher, tmp_path, losses="logits=1")
    assert len({a.signature, b.signature, c.signature}) == 3
    assert a.label == "distill-proxy[accuracy, 3 steps]"


def test_the_same_settings_give_the_same_scores_from_scratch(est_task, est_task_teacher, tmp_path):
    one = _make(est_task, est_task_teacher, tmp_path / "a", metric="kd")
    two = _make(est_task, est_task_teacher, tmp_path / "b", metric="kd")
    np.testing.assert_allclose(one.score(ARCHS), two.score(ARCHS), rtol=1e-6)


def test_students_can_start_from_a_supernet(est_task, est_task_teacher, est_supernet, tmp_path):
    from_teacher = _make(est_task, est_task_teacher, tmp_path / "t", metric="kd")
    from_supernet = _make(est_task, est_task_teacher, tmp_path / "s", metric="kd", supernet=str(est_supernet))
    assert from_teacher.signature != from_supernet.signature
    scores = from_supernet.score(ARCHS)
    assert np.all(np.isfinite(scores)) and not np.allclose(scores, from_teacher.score(ARCHS))


def test_a_separate_evaluation_file_scores_its_rows(est_task, est_task_teacher, tmp_path):
    est = _make(est_task, est_task_teacher, tmp_path, eval_task=str(est_task), eval_offset=8, eval_rows=40)
    assert len(est.held) == 40 and len(est.train) == 96  # the whole task file trains
    assert est.held.texts == est.train.texts[8:48]
    with pytest.raises(InvalidData, match=r"has 96 rows; distill-proxy needs eval_offset \+ eval_rows = 208"):
        _make(est_task, est_task_teacher, tmp_path, eval_task=str(est_task), eval_offset=8, eval_rows=200)


def test_per_row_records_give_accuracy_and_agreement_on_any_slice(est_task, est_task_teacher, tmp_path, monkeypatch):
    est = _make(est_task, est_task_teacher, tmp_path, eval_task=str(est_task), eval_offset=8, eval_rows=40)
    recs = est.metrics(ARCHS)
    whole = est.slice_metrics(ARCHS)
    halves = est.slice_metrics(ARCHS, 0, 15), est.slice_metrics(ARCHS, 15, 40)
    for rec, w, a, b in zip(recs, whole, *halves, strict=True):
        assert w["accuracy"] == pytest.approx(rec["accuracy"]) and w["agreement"] == pytest.approx(rec["agreement"])
        for m in ("accuracy", "agreement"):  # the two slices add up to the whole, row by row
            assert (15 * a[m] + 25 * b[m]) / 40 == pytest.approx(w[m])
    # a run scored on rows 8..48 read on its rows 8..23 is the same as a run scored on rows 8..23 only
    short = _make(est_task, est_task_teacher, tmp_path / "short", eval_task=str(est_task), eval_offset=8, eval_rows=15)
    assert [r["accuracy"] for r in short.metrics(ARCHS)] == pytest.approx([r["accuracy"] for r in halves[0]])
    with pytest.raises(InvalidConfig, match=r"needs 0 <= start < stop <= 40; got 30:41"):
        est.slice_metrics(ARCHS, 30, 41)
    # a cache written before per-row records were kept: one line, no silent zeros
    saved = json.loads((tmp_path / "runs.json").read_text())
    for run in saved["runs"].values():
        del run["correct"], run["agrees"]
    (tmp_path / "runs.json").write_text(json.dumps(saved))
    old = _make(est_task, est_task_teacher, tmp_path, eval_task=str(est_task), eval_offset=8, eval_rows=40)
    assert old.score(ARCHS).tolist() == [r["accuracy"] for r in recs]  # the cached scores still serve
    with pytest.raises(InvalidConfig, match="has no per-row records"):
        old.slice_metrics(ARCHS, 0, 10)


def test_record_at_scores_earlier_steps_of_the_same_run(est_task, est_task_teacher, tmp_path):
    """Scoring at step 2 of a 4-step run changes nothing in the run, and gives what stopping at step 2 gives."""
    curve = _make(est_task, est_task_teacher, tmp_path / "curve", steps=4, record_at="2")
    whole = _make(est_task, est_task_teacher, tmp_path / "whole", steps=4)
    early = _make(est_task, est_task_teacher, tmp_path / "early", steps=2, schedule_steps=4)
    for c, w, e in zip(curve.metrics(ARCHS), whole.metrics(ARCHS), early.metrics(ARCHS), strict=True):
        for m in METRICS:
            assert c[m] == pytest.approx(w[m], abs=1e-6) and c[f"{m}@2"] == pytest.approx(e[m], abs=1e-6)
        assert c["correct"] == w["correct"] and c["correct@2"] == e["correct"] and c["agrees@2"] == e["agrees"]
    at2 = _make(est_task, est_task_teacher, tmp_path / "curve", steps=4, record_at=[2], metric="kd@2")
    np.testing.assert_allclose(at2.score(ARCHS), [r["kd"] for r in early.metrics(ARCHS)], atol=1e-6)
    assert [r["accuracy"] for r in curve.slice_metrics(ARCHS, 0, 5, step=2)] == pytest.approx(
        [r["accuracy"] for r in early.slice_metrics(ARCHS, 0, 5)])
    assert curve.signature != whole.signature  # a cache without the earlier steps is not taken for one with them
    with pytest.raises(InvalidConfig, match=r"record_at steps must be integers from 1 to steps - 1 = 3; got 4"):
        _make(est_task, est_task_teacher, tmp_path, steps=4, record_at="2,4")
    with pytest.raises(InvalidConfig, match=r"@STEP for a step in record_at \(2\); got 'accuracy@3'"):
        _make(est_task, est_task_teacher, tmp_path, steps=4, record_at="2", metric="accuracy@3")
    with pytest.raises(InvalidConfig, match="step 3 is not one of record_at"):
        curve.slice_metrics(ARCHS, 0, 5, step=3)


def test_row_scores_are_the_per_row_hits_whose_means_are_the_scores(est_task, est_task_teacher, tmp_path):
    """What the search's ``2se`` tie rule reads: one row of 0/1 per architecture, averaging to its score."""
    for metric in ("accuracy", "agreement", "agreement@2"):
        est = _make(est_task, est_task_teacher, tmp_path, steps=4, record_at="2", metric=metric,
                    eval_task=str(est_task), eval_offset=8, eval_rows=40)
        assert est.has_row_scores()
        rows = est.row_scores(ARCHS)
        assert rows.shape == (2, 40) and set(np.unique(rows)) <= {0.0, 1.0}
        np.testing.assert_allclose(rows.mean(axis=1), est.score(ARCHS), atol=1e-6)
    kd = _make(est_task, est_task_teacher, tmp_path, steps=4, record_at="2", metric="kd",
               eval_task=str(est_task), eval_offset=8, eval_rows=40)
    assert not kd.has_row_scores()
    assert "metric kd is not a mean of per-row hits" in kd.row_scores_problem()
    with pytest.raises(InvalidConfig, match="distill-proxy with metric kd has no per-row scores"):
        kd.row_scores(ARCHS)
    # a cache holding runs of an older hwnas (no per-row records) is refused by a 2se search before it starts
    from hwnas.search.ties import parse_tie_margin

    cache = tmp_path / "runs.json"
    saved = json.loads(cache.read_text())
    for run in saved["runs"].values():
        run.pop("correct", None), run.pop("agrees", None)
    cache.write_text(json.dumps(saved))
    old = _make(est_task, est_task_teacher, tmp_path, steps=4, record_at="2", metric="accuracy",
                eval_task=str(est_task), eval_offset=8, eval_rows=40)
    assert not old.has_row_scores() and len(old.runs_without_rows()) == 2
    with pytest.raises(InvalidConfig, match=r"tie margin 2se needs per-row scores: its cache .* holds 2 run\(s\) "
                                            r"recorded without per-row records"):
        parse_tie_margin("2se").check_estimator(old)


def test_without_an_evaluation_file_the_last_rows_are_held_out(est_task, est_task_teacher, tmp_path):
    est = _make(est_task, est_task_teacher, tmp_path)
    from hwnas.distill.data import load_task

    rows = load_task(est_task).texts
    assert len(est.held) == 96 // 5 and est.held.texts == rows[-(96 // 5):] and est.train.texts == rows[:-(96 // 5)]
    with pytest.raises(InvalidData, match="leaves none to train on"):
        _make(est_task, est_task_teacher, tmp_path, eval_rows=96)


@pytest.mark.parametrize("kw,match", [
    ({"metric": "f1"}, r"metric must be one of accuracy, agreement, kd \(NAME@STEP needs that step in record_at\); got 'f1'"),
    ({"steps": 0}, r"steps must be an integer >= 1; got 0"),
    ({"eval_offset": -1}, r"eval_offset must be an integer >= 0"),
    ({"losses": "logits=1,nope=2"}, r"unknown loss"),
])
def test_bad_settings_are_one_line(est_task, est_task_teacher, tmp_path, kw, match):
    with pytest.raises(InvalidConfig, match=match):
        _make(est_task, est_task_teacher, tmp_path, **kw)


def test_a_teacher_without_the_task_head_is_refused(est_task, est_teacher, tmp_path):
    with pytest.raises(InvalidConfig, match=r"is not fine-tuned on this task .*2 labels; it has none"):
        _make(est_task, est_teacher, tmp_path)
    with pytest.raises(InvalidConfig, match="needs a teacher fine-tuned on the task"):
        make_estimator("distill-proxy", task=str(est_task), teacher="default")


def test_schedule_steps_runs_the_first_steps_of_the_longer_distillation(est_task, est_task_teacher, tmp_path):
    """steps=2 of schedule_steps=4 is the state after step 2 of a real 4-step `train()` (same batches and rates)."""
    import copy

    import torch

    from hwnas.distill.data import encode
    from hwnas.distill.models import init_student
    from hwnas.distill.teacher import load_task_teacher
    from hwnas.distill.trainer import TrainConfig, predict_logits, train

    arch = ARCHS[1]
    proxy = _make(est_task, est_task_teacher, tmp_path / "p", steps=2, schedule_steps=4, metric="kd")
    assert proxy.label == "distill-proxy[kd, 2 steps of 4]"
    got = proxy.score([arch])[0]

    teacher = load_task_teacher(est_task_teacher, None, "classification", 2)
    student, _ = init_student(arch, 2, init="teacher", teacher_path=est_task_teacher,
                              problem_type="single_label_classification", seed=0)
    seen = {}

    def at_step(event):
        if event.completed == 2:
            seen["state"] = copy.deepcopy(student.state_dict())

    tc = TrainConfig(steps=4, batch_size=4, lr=1e-4, max_len=16, seed=0, checkpoint_every=0)
    train(student, teacher.model, proxy.loss_config, encode(teacher.tokenizer, proxy.train, 16), "classification", tc,
          tmp_path / "full", on_progress=at_step, meta={"arch": arch.key})
    student.load_state_dict(seen["state"])
    held = encode(teacher.tokenizer, proxy.held, 16)
    t_logp = torch.log_softmax(predict_logits(teacher.model, held), -1)
    s_logp = torch.log_softmax(predict_logits(student, held), -1)
    expected = -float((t_logp.exp() * (t_logp - s_logp)).sum(-1).mean())
    assert got == pytest.approx(expected, rel=1e-5)
    # a compressed 2-step schedule is another run
    assert _make(est_task, est_task_teacher, tmp_path / "c", steps=2, metric="kd").score([arch])[0] != pytest.approx(got)
    with pytest.raises(InvalidConfig, match=r"schedule_steps must be at least steps \(3\); got 2"):
        _make(est_task, est_task_teacher, tmp_path, schedule_steps=2)
