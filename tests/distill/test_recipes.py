"""Named distillation recipes: each builds a valid configuration, gt-v1 stays the ground truth's recipe, typed options
override a recipe, and the run records its recipe; plus the layer mappings and the temperature schedule."""

from __future__ import annotations

import json

import pytest
import torch

from hwnas.data import embedded_path
from hwnas.distill.api import DistillConfig
from hwnas.distill.losses import (
    DistillLoss,
    LossConfig,
    ModelOutputs,
    ModelShape,
    kd_logits,
    layer_map,
)
from hwnas.distill.recipes import RECIPES, apply_recipe, get_recipe, recipe_overrides
from hwnas.errors import InvalidConfig
from hwnas.outputs import write_marker
from tests.cli_run import run_cli as _run
from tests.estimators.conftest import load_bench


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_named_recipe_makes_a_valid_config_that_records_it(name):
    config = DistillConfig(arch="layers=1,hidden=32,heads=2,ffn=64", task="x.tsv", measure=False,
                           **apply_recipe(name, {}))
    assert config.recipe == name and config.to_dict()["recipe"] == name
    assert recipe_overrides(config, name) == {}
    assert RECIPES[name].description


def test_gt_v1_is_the_ground_truth_table_recipe():
    gt = load_bench("gt_run", "ground_truth/run.py")
    assert gt.RECIPE_ID == "gt-v1"
    kw = apply_recipe("gt-v1", {})
    for key, value in gt.RECIPE.items():
        if key == "losses":
            assert kw["losses"] == LossConfig.parse(value), key
        else:
            assert kw[key] == value, key
    # run.py passes these as flags without a recipe: the same settings, so its folders are reused under --recipe gt-v1
    flags = DistillConfig(arch="layers=1,hidden=32,heads=2,ffn=64", task="x.tsv", measure=False,
                          losses=LossConfig.parse(gt.RECIPE["losses"]),
                          **{k: v for k, v in gt.RECIPE.items() if k != "losses"})
    named = DistillConfig(arch="layers=1,hidden=32,heads=2,ffn=64", task="x.tsv", measure=False, **kw)
    a, b = flags.to_dict(), named.to_dict()
    assert b.pop("recipe") == "gt-v1" and a == b


def test_typed_settings_override_the_recipe():
    kw = apply_recipe("annealed", {"steps": 50, "temperature": 3.0})
    assert kw["steps"] == 50 and kw["losses"].temperature == 3.0 and kw["losses"].temperature_end == 1.0
    assert apply_recipe("two-stage", {"steps": 200})["agnostic_steps"] == 100  # scaled with the steps
    assert apply_recipe("two-stage", {"steps": 200, "agnostic_steps": 7})["agnostic_steps"] == 7
    kw = apply_recipe("mi-alpha", {"losses": LossConfig(weights={"logits": 1.0})})
    assert kw["losses"].weights == {"logits": 1.0} and kw["augment"] == 1


def test_unknown_recipe_and_a_recipe_file_naming_an_unknown_loss(tmp_path):
    with pytest.raises(InvalidConfig, match="unknown recipe 'fastest'; recipes are: default, gt-v1"):
        get_recipe("fastest")
    bad = tmp_path / "r.yaml"
    bad.write_text("name: mine\nsettings: {losses: {weights: {logits: 1, telepathy: 2}}}\n")
    with pytest.raises(InvalidConfig, match="recipe 'mine': .*unknown loss 'telepathy'"):
        get_recipe(str(bad))
    bad.write_text("name: mine\nsettings: {loss_weights: 1}\n")
    with pytest.raises(InvalidConfig, match="unknown settings \\['loss_weights'\\]"):
        get_recipe(str(bad))


@pytest.mark.parametrize("recipe, message", [("fastest", "unknown recipe 'fastest'"),
                                             ("bad.yaml", "unknown loss 'telepathy'")])
def test_cli_bad_recipe_is_one_line_exit_2_and_keeps_out(recipe, message, tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("name: mine\nsettings: {losses: {weights: {logits: 1, telepathy: 2}}}\n")
    out = tmp_path / "student"
    out.mkdir()
    write_marker(out, "distill")
    (out / "model.safetensors").write_bytes(b"trained before")
    arg = str(tmp_path / recipe) if recipe.endswith(".yaml") else recipe
    code, _, err = _run(["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")),
                         "--out", str(out), "--recipe", arg, "--no-measure", "--quiet"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert (out / "model.safetensors").read_bytes() == b"trained before"


def test_cli_recipe_run_records_its_recipe_and_appends_the_experience_table(tiny_teacher, tmp_path, capsys):
    from hwnas.distill.experience import read_table

    out, table = tmp_path / "student", tmp_path / "exp.jsonl"
    code, stdout, err = _run(["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")),
                              "--teacher", str(tiny_teacher), "--out", str(out), "--limit", "60", "--recipe", "annealed",
                              "--steps", "3", "--teacher-steps", "3", "--batch-size", "8", "--max-len", "24",
                              "--no-measure", "--quiet", "--experience", str(table)], capsys)
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"]["name"] == "annealed"
    assert set(report["recipe"]["overrides"]) == {"steps", "teacher_steps", "batch_size", "max_len"}
    assert report["losses"]["temperature"] == 4.0 and report["losses"]["temperature_end"] == 1.0
    assert json.loads((out / "distill_config.json").read_text())["recipe"] == "annealed"
    assert "recipe" in stdout and "annealed" in stdout
    rows = read_table(table)
    assert len(rows) == 1 and rows[0]["recipe"]["name"] == "annealed"
    rec = rows[0]
    assert rec["recipe"]["settings"]["steps"] == 3 and rec["arch"]["layers"] == 1
    assert rec["result"]["kept"] == pytest.approx(report["student_score"] / report["teacher_score"])
    assert rec["features"]["num_labels"] == 2.0 and 0 < rec["features"]["emb_cos"] < 1


def test_layer_mappings():
    assert layer_map(2, 6) == [(1, 3), (2, 6)]
    assert layer_map(2, 6, "last") == [(1, 5), (2, 6)]
    assert layer_map(3, 6, "top") == [(3, 6)]
    with pytest.raises(InvalidConfig, match="layer_map must be one of uniform, last, top"):
        LossConfig(weights={"hidden": 1.0}, layer_map="middle")


def test_the_logits_temperature_follows_its_schedule_during_training():
    cfg = LossConfig(weights={"logits": 1.0}, temperature=4.0, temperature_end=1.0)
    assert cfg.temperature_at(0.0) == 4.0 and cfg.temperature_at(0.5) == 2.5 and cfg.temperature_at(1.0) == 1.0
    loss = DistillLoss(cfg, ModelShape(1, 8, 2), ModelShape(1, 8, 2), "classification")
    torch.manual_seed(0)
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    out = lambda x: ModelOutputs(x, None, None, None, torch.ones(4, 5))  # noqa: E731
    for progress, temperature in ((0.0, 4.0), (1.0, 1.0)):
        loss.set_progress(progress)
        total, _ = loss(out(s), out(t), torch.zeros(4, dtype=torch.long))
        assert float(total) == pytest.approx(float(kd_logits(s, t, temperature)))


def test_new_loss_settings_at_their_defaults_leave_recorded_configs_unchanged():
    assert set(LossConfig(weights={"logits": 1.0}).to_dict()) == {"weights", "temperature", "alpha", "mi_temperature",
                                                                   "relation_heads"}
