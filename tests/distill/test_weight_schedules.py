"""Loss-weight schedules: their values at given steps, the trainer training with the scheduled weight at every
global step (also across a resume), the ``scheduled`` recipe and its records, bad input refused with one line, and
configs without schedules recorded exactly as before schedules existed."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hwnas.data import embedded_path
from hwnas.distill.api import DistillConfig
from hwnas.distill.auto import recipe_features, settings_record
from hwnas.distill.losses import (
    WEIGHT_SHAPES,
    DistillLoss,
    LossConfig,
    ModelOutputs,
    ModelShape,
    WeightSchedule,
    kd_logits,
    parse_weight_schedules,
)
from hwnas.distill.recipes import RECIPES, apply_recipe, candidates, recipe_overrides
from hwnas.errors import InvalidConfig
from hwnas.outputs import write_marker
from tests.cli_run import run_cli as _run

ARCH = "layers=1,hidden=32,heads=2,ffn=64"


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("spec, expected", [
    # progress:             0     0.25                                   0.5    1
    ("constant:3->0", [3.0, 3.0, 3.0, 3.0]),
    ("linear:1->0", [1.0, 0.75, 0.5, 0.0]),
    ("linear:0.5->1", [0.5, 0.625, 0.75, 1.0]),
    ("cosine:1->0", [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.0]),
    ("step:1->0@0.5", [1.0, 1.0, 0.0, 0.0]),
    ("step:2->0.5@0.3", [2.0, 2.0, 0.5, 0.5]),
    ("step:2->0.5@0.2", [2.0, 0.5, 0.5, 0.5]),
])
def test_schedule_values_at_fractions_of_training(spec, expected):
    s = WeightSchedule.parse(spec)
    got = [s.value(7.0, p) for p in (0.0, 0.25, 0.5, 1.0)]
    assert got == pytest.approx(expected)
    assert s.value(7.0, -1) == got[0] and s.value(7.0, 2) == got[-1]  # clipped to [0, 1]
    assert set(WEIGHT_SHAPES) == {"constant", "linear", "cosine", "step"}


def test_start_and_end_default_to_the_loss_weight_and_the_forms_agree():
    cfg = LossConfig(weights={"logits": 2.0, "hidden": 4.0},
                     weight_schedule={"hidden": "linear:->0", "logits": {"shape": "cosine", "start": 0.5}})
    assert cfg.weight_schedule["hidden"] == WeightSchedule("linear", None, 0.0)
    assert WeightSchedule.parse("step:1->0").to_dict() == {"shape": "step", "start": 1.0, "end": 0.0, "at": 0.5}
    # steps=5: the 0-based global step s is at progress s / 4
    assert [cfg.weight_at("hidden", s / 4) for s in range(5)] == pytest.approx([4.0, 3.0, 2.0, 1.0, 0.0])
    assert [cfg.weight_at("logits", p) for p in (0, 0.5, 1)] == pytest.approx([0.5, 1.25, 2.0])
    assert WeightSchedule.parse("step:1->0@0.3") == WeightSchedule.from_dict(
        {"shape": "step", "start": 1, "end": 0, "at": 0.3}, where="x")
    assert parse_weight_schedules(["hidden=linear:1->0", "logits=cosine:0.5->1"]) == {
        "hidden": WeightSchedule("linear", 1.0, 0.0), "logits": WeightSchedule("cosine", 0.5, 1.0)}
    assert parse_weight_schedules(["none"]) == {}
    # a config round-trips through its dict (what distill_config.json and checkpoints hold)
    assert LossConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.to_dict()["weight_schedule"] == {"hidden": {"shape": "linear", "end": 0.0},
                                                "logits": {"shape": "cosine", "start": 0.5}}


@pytest.mark.parametrize("schedule, message", [
    ({"telepathy": "linear:1->0"}, "unknown loss 'telepathy' in weight_schedule"),
    ({"hidden": "wobbly:1->0"}, "shape must be one of constant, linear, cosine, step; got 'wobbly'"),
    ({"hidden": "linear:1->-1"}, "end must be a finite number >= 0; got -1.0"),
    ({"hidden": {"shape": "linear", "start": -2}}, "start must be a finite number >= 0; got -2"),
    ({"attention": "linear:1->0"}, "weight_schedule names 'attention', which is not among the losses (logits, hidden)"),
    ({"hidden": "step:1->0@0"}, "'at' must be a fraction of training in (0, 1]"),
    ({"hidden": "linear:1->0@0.3"}, "'at' applies to step schedules only"),
    ({"hidden": "linear:1 to 0"}, "cannot read 'linear:1 to 0'; write SHAPE[:START->END][@AT]"),
    ({"hidden": {"shape": "linear", "stop": 0}}, "unknown keys ['stop']; allowed: shape, start, end, at"),
    ({"hidden": "step:1->0@0.3", "logits": "step:0->1@0.7"}, "leaves every loss at weight 0 at 30% of training"),
])
def test_bad_schedules_are_refused_naming_what_is_wrong(schedule, message):
    with pytest.raises(InvalidConfig) as info:
        LossConfig(weights={"logits": 1.0, "hidden": 1.0}, weight_schedule=schedule)
    assert message in str(info.value)


def test_the_loss_sums_the_scheduled_weights():
    cfg = LossConfig(weights={"logits": 1.0, "task": 1.0}, weight_schedule={"task": "linear:1->0"})
    loss = DistillLoss(cfg, ModelShape(1, 8, 2), ModelShape(1, 8, 2), "classification")
    torch.manual_seed(0)
    s, t, labels = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    out = lambda x: ModelOutputs(x, None, None, None, torch.ones(4, 5))
    kd, ce = float(kd_logits(s, t, 2.0)), float(torch.nn.functional.cross_entropy(s, labels))
    for progress, w_task in ((0.0, 1.0), (0.5, 0.5), (1.0, 0.0)):
        loss.set_progress(progress)
        total, parts = loss(out(s), out(t), labels)
        assert float(total) == pytest.approx(kd + w_task * ce, rel=1e-6)
        assert parts["task"] == pytest.approx(ce)  # parts stay unweighted


# ------------------------------------------------------------------ the trainer
@pytest.fixture(scope="module")
def setup(tiny_teacher):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hwnas.distill.data import encode, load_task

    tok = AutoTokenizer.from_pretrained(tiny_teacher)
    enc = encode(tok, load_task(embedded_path("sst2/train.tsv"), limit=64), 24)
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_teacher, num_labels=2).eval()
    return tiny_teacher, enc, teacher


def _check_weights_used(events, cfg, steps):
    """Every logged step's total is the sum of its parts times the weights scheduled at that global step."""
    assert events
    for completed, m in events:
        progress = (completed - 1) / (steps - 1)
        want = sum(cfg.weight_at(name, progress) * m[name] for name in cfg.active)
        assert m["loss"] == pytest.approx(want, rel=1e-5, abs=1e-7), (completed, m)


def test_training_uses_the_scheduled_weight_and_a_resume_continues_the_schedule(setup, tmp_path):
    from hwnas.distill.models import init_student
    from hwnas.distill.trainer import TrainConfig, train
    from hwnas.space import Architecture

    folder, enc, teacher = setup
    steps = 8
    cfg = LossConfig(weights={"logits": 1.0, "hidden": 1.0}, weight_schedule={"hidden": "linear:1->0"})
    tc = TrainConfig(steps=steps, batch_size=8, lr=1e-3, checkpoint_every=3)

    def fresh():
        return init_student(Architecture(1, 32, 2, 64), 2, init="teacher", teacher_path=folder, seed=0)[0]

    reference, ref_events = fresh(), []
    train(reference, teacher, cfg, enc, "classification", tc, tmp_path / "a",
          on_progress=lambda ev: ref_events.append((ev.completed, dict(ev.metrics))))
    assert [c for c, _ in ref_events] == list(range(1, steps + 1))
    _check_weights_used(ref_events, cfg, steps)
    first, last = ref_events[0][1], ref_events[-1][1]
    assert first["hidden"] > 0 and first["loss"] == pytest.approx(first["logits"] + first["hidden"], rel=1e-5)
    assert last["loss"] == pytest.approx(last["logits"], rel=1e-6)  # hidden weighted 0 at the last step

    class Killed(Exception):
        pass

    def kill_at_5(ev):
        if ev.completed == 5:
            raise Killed

    with pytest.raises(Killed):
        train(fresh(), teacher, cfg, enc, "classification", tc, tmp_path / "b", on_progress=kill_at_5)
    resumed, events = fresh(), []
    result = train(resumed, teacher, cfg, enc, "classification", tc, tmp_path / "b",
                   on_progress=lambda ev: events.append((ev.completed, dict(ev.metrics))))
    assert result.resumed_from == 3 and [c for c, _ in events] == [4, 5, 6, 7, 8]
    _check_weights_used(events, cfg, steps)  # steps 4-8 at their global progress, not restarted at 0
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    # a checkpoint written under one schedule is not resumed under another
    other = LossConfig(weights={"logits": 1.0, "hidden": 1.0}, weight_schedule={"hidden": "cosine:1->0"})
    with pytest.raises(InvalidConfig, match="different loss_config"):
        train(fresh(), teacher, other, enc, "classification", tc, tmp_path / "b")


def test_a_schedule_changes_what_the_student_learns(setup, tmp_path):
    """Hidden weighted 0 from the first step (constant 0) trains differently from hidden at weight 1."""
    from hwnas.distill.models import init_student
    from hwnas.distill.trainer import TrainConfig, train
    from hwnas.space import Architecture

    folder, enc, teacher = setup
    tc = TrainConfig(steps=4, batch_size=8, lr=1e-3, checkpoint_every=0)
    weights = {"logits": 1.0, "hidden": 1.0}
    students = []
    for schedule in ({}, {"hidden": "constant:0->0"}):
        student = init_student(Architecture(1, 32, 2, 64), 2, init="teacher", teacher_path=folder, seed=0)[0]
        events = []
        cfg = LossConfig(weights=weights, weight_schedule=schedule)
        train(student, teacher, cfg, enc, "classification", tc, tmp_path / str(len(students)),
              on_progress=lambda ev, log=events: log.append((ev.completed, dict(ev.metrics))))
        _check_weights_used(events, cfg, 4)
        students.append(student.state_dict())
    assert all(m["loss"] == pytest.approx(m["logits"], rel=1e-6) for _, m in events)  # the zeroed run
    diff = max(float((a - b).abs().max()) for a, b in zip(students[0].values(), students[1].values(), strict=True))
    assert diff > 1e-5


# ------------------------------------------------------------------ recipes and records
def test_the_scheduled_recipe_and_overrides():
    r = RECIPES["scheduled"]
    assert not r.candidate and r not in candidates()  # no runs of it in the shipped experience yet
    kw = apply_recipe("scheduled", {})
    losses = kw["losses"]
    assert losses.weights == {"logits": 1.0, "hidden": 1.0, "attention": 1.0}
    assert [losses.weight_at("hidden", p) for p in (0, 0.5, 1)] == [1.0, 0.5, 0.0]
    assert losses.weight_at("logits", 1.0) == 1.0
    config = DistillConfig(arch=ARCH, task="x.tsv", measure=False, **kw)
    assert config.to_dict()["losses"]["weight_schedule"] == {"hidden": {"shape": "linear", "end": 0.0},
                                                             "attention": {"shape": "linear", "end": 0.0}}
    assert recipe_overrides(config, "scheduled") == {}
    # typed schedules replace the recipe's; 'none' ({}) removes them
    assert apply_recipe("scheduled", {"weight_schedule": {}})["losses"].weight_schedule == {}
    typed = apply_recipe("default", {"weight_schedule": parse_weight_schedules(["attention=cosine:1->0"])})
    assert set(typed["losses"].weight_schedule) == {"attention"}
    with pytest.raises(InvalidConfig, match="weight_schedule names 'hidden', which is not among the losses"):
        apply_recipe("minilm", {"weight_schedule": parse_weight_schedules(["hidden=linear:1->0"])})
    # the AutoDistiller tells it apart from the default: the end weights differ
    f_default, f_sched = recipe_features(settings_record(apply_recipe("default", {}))), recipe_features(
        settings_record(kw))
    assert f_default["w_hidden"] == f_sched["w_hidden"] == 1.0
    assert f_default["wend_hidden"] == 1.0 and f_sched["wend_hidden"] == 0.0 and f_sched["wend_logits"] == 1.0


def test_configs_without_schedules_are_recorded_as_before_schedules_existed():
    # what distill_config.json and every checkpoint's state.json held for the default losses before this change
    old = {"weights": {"logits": 1.0, "hidden": 1.0, "attention": 1.0}, "temperature": 2.0, "alpha": 0.5,
           "mi_temperature": 0.1, "relation_heads": None}
    config = DistillConfig(arch=ARCH, task="x.tsv", measure=False)
    assert json.loads(json.dumps(config.to_dict()))["losses"] == old
    assert LossConfig.from_dict(old).to_dict() == old
    assert LossConfig.from_dict({**old, "weight_schedule": {}}).to_dict() == old
    # the shipped experience runs keep their features: end weights equal the weights
    from hwnas.distill.experience import SEED_TABLE, read_table

    for rec in read_table(SEED_TABLE):
        f = recipe_features(rec["recipe"]["settings"])
        for name in ("task", "logits", "hidden", "attention", "value_relation", "mi_alpha"):
            assert f[f"wend_{name}"] == f[f"w_{name}"]


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize("extra, message", [
    (["--weight-schedule", "telepathy=linear:1->0"], "unknown loss 'telepathy'"),
    (["--weight-schedule", "hidden=wobbly:1->0"], "shape must be one of constant, linear, cosine, step"),
    (["--weight-schedule", "hidden=linear:1->-2"], "end must be a finite number >= 0"),
    (["--weight-schedule", "hidden"], "cannot read 'hidden'; write LOSS=SHAPE[:START->END][@AT]"),
    (["--losses", "logits=1", "--weight-schedule", "hidden=linear:1->0"],
     "weight_schedule names 'hidden', which is not among the losses (logits)"),
    (["--recipe", "minilm", "--weight-schedule", "hidden=linear:1->0"],
     "weight_schedule names 'hidden', which is not among the losses"),
    (["--recipe", "FILE"], "unknown loss 'telepathy' in weight_schedule"),
])
def test_cli_bad_schedule_is_one_line_exit_2_and_keeps_out(extra, message, tmp_path, capsys):
    recipe_file = tmp_path / "mine.yaml"
    recipe_file.write_text("name: mine\nsettings: {losses: {weights: {logits: 1}, "
                           "weight_schedule: {telepathy: 'linear:1->0'}}}\n")
    out = tmp_path / "student"
    out.mkdir()
    write_marker(out, "distill")
    (out / "model.safetensors").write_bytes(b"trained before")
    before = sorted(p.name for p in out.iterdir())
    extra = [str(recipe_file) if x == "FILE" else x for x in extra]
    code, _, err = _run(["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")),
                         "--out", str(out), "--no-measure", "--quiet", "--no-experience", *extra], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert (out / "model.safetensors").read_bytes() == b"trained before"
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.slow
def test_cli_scheduled_recipe_records_its_schedule(tiny_teacher, tmp_path, capsys):
    from hwnas.distill.experience import read_table

    out, table = tmp_path / "student", tmp_path / "exp.jsonl"
    args = ["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")),
            "--teacher", str(tiny_teacher), "--out", str(out), "--limit", "40", "--recipe", "scheduled",
            "--weight-schedule", "hidden=cosine:1->0,attention=step:1->0@0.5",
            "--steps", "3", "--teacher-steps", "2", "--batch-size", "8", "--max-len", "16",
            "--no-measure", "--quiet", "--experience", str(table)]
    code, stdout, err = _run(args, capsys)
    assert code == 0, err
    shown = " ".join(stdout.replace("│", " ").split())  # the report table, however rich wrapped it
    assert "hidden cosine 1->0, attention step 1->0 at 50%" in shown, stdout
    want = {"hidden": {"shape": "cosine", "start": 1.0, "end": 0.0},
            "attention": {"shape": "step", "start": 1.0, "end": 0.0, "at": 0.5}}
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"]["name"] == "scheduled" and report["losses"]["weight_schedule"] == want
    assert "losses" in report["recipe"]["overrides"]  # the typed schedule differs from the recipe's
    assert json.loads((out / "distill_config.json").read_text())["losses"]["weight_schedule"] == want
    rows = read_table(table)
    assert len(rows) == 1 and rows[0]["recipe"]["settings"]["losses"]["weight_schedule"] == want
    assert recipe_features(rows[0]["recipe"]["settings"])["wend_hidden"] == 0.0
    # the same command again finds the finished folder and reuses it (its settings, schedule included, match)
    stamp = (out / "report.json").stat().st_mtime_ns
    code, _, err = _run(args, capsys)
    assert code == 0, err
    assert (out / "report.json").stat().st_mtime_ns == stamp and len(read_table(table)) == 1


def test_weight_schedule_option_takes_commas_repeats_and_spaces_alike():
    """The shared list syntax (hwnas.cli._options.list_option): parsed by click only, nothing run."""
    from hwnas.cli._options import split_list
    from hwnas.cli.main import cli

    forms = (["hidden=linear:1->0,logits=cosine:0.5->1"], ["hidden=linear:1->0", "logits=cosine:0.5->1"],
             [" hidden=linear:1->0 , ", "logits=cosine:0.5->1"])
    parsed = []
    for values in forms:
        args = ["distill", "--arch", ARCH, "--task", "t.tsv", "--out", "o", *(x for v in values for x in ("--weight-schedule", v))]
        ctx = cli.make_context("hwnas", list(args), resilient_parsing=True)
        name, cmd, rest = cli.resolve_command(ctx, args)
        params = cmd.make_context(name, rest, parent=ctx).params
        parsed.append(parse_weight_schedules(split_list(params["weight_schedule"])))
    assert parsed[0] == parsed[1] == parsed[2] and set(parsed[0]) == {"hidden", "logits"}
