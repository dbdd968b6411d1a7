"""Experience schema 2: records state how the hidden loss's projection started; schema-1 records with the hidden
loss read as the random start that trained them, and the AutoDistiller's ``hidden_aligned`` feature tells them apart
from runs with the aligned start (real files, real XGBoost)."""

from __future__ import annotations

import json

import pytest

from hwnas.distill.auto import FEATURES, RECIPE_FEATURES, Recommender, recipe_features, recommend, settings_record
from hwnas.distill.experience import SCHEMA_VERSION, append_record, make_record, read_table
from hwnas.distill.recipes import apply_recipe
from hwnas.errors import InvalidConfig, InvalidData

ARCH = {"layers": 2, "hidden": 128, "heads": 2, "ffn": 512}


def _now(recipe: str = "default", task: str = "t1", kept: float = 0.8, feats: float = 1.0) -> dict:
    """A record as ``hwnas distill`` writes it now (the recipe's real settings)."""
    return make_record(recipe_name=recipe, settings=settings_record(apply_recipe(recipe, {"steps": 100})),
                       features={f: feats for f in FEATURES}, arch=ARCH, metric="accuracy", student=kept * 0.9,
                       teacher=0.9, steps=100, task_id=task, source=f"{task}.tsv")


def _schema1(rec: dict) -> dict:
    """The same run as a schema-1 record: no ``hidden_projection`` key (every such run started random)."""
    old = json.loads(json.dumps(rec))
    old["schema"] = 1
    del old["recipe"]["settings"]["losses"]["hidden_projection"]
    return old


def _write(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_a_record_written_now_states_the_aligned_start(tmp_path):
    table = tmp_path / "exp.jsonl"
    append_record(table, _now())
    on_disk = json.loads(table.read_text().splitlines()[0])
    assert SCHEMA_VERSION == 2 and on_disk["schema"] == 2
    assert on_disk["recipe"]["settings"]["losses"]["hidden_projection"] == "aligned"
    assert read_table(table)[0]["recipe"]["settings"]["losses"]["hidden_projection"] == "aligned"


def test_a_schema1_record_with_the_hidden_loss_reads_as_random_and_its_feature_differs(tmp_path):
    table = tmp_path / "exp.jsonl"
    new = _now("default")
    assert new["recipe"]["settings"]["losses"]["weights"]["hidden"] > 0
    no_hidden = _schema1(_now("logits-only"))
    assert no_hidden["recipe"]["settings"]["losses"]["weights"].get("hidden", 0) == 0
    _write(table, [_schema1(new), new, no_hidden])
    old_row, new_row, no_hidden_row = read_table(table)
    assert old_row["schema"] == 1 and old_row["recipe"]["settings"]["losses"]["hidden_projection"] == "random"
    assert "hidden_projection" not in no_hidden_row["recipe"]["settings"]["losses"]  # nothing to fill in
    f_old, f_new = (recipe_features(r["recipe"]["settings"]) for r in (old_row, new_row))
    assert f_old["hidden_aligned"] == 0.0 and f_new["hidden_aligned"] == 1.0
    assert {k: v for k, v in f_old.items() if k != "hidden_aligned"} == {
        k: v for k, v in f_new.items() if k != "hidden_aligned"}  # the same recipe otherwise
    assert recipe_features(no_hidden_row["recipe"]["settings"])["hidden_aligned"] == 0.0
    # a candidate recipe as the recommender scores it (LossConfig.to_dict leaves the aligned default out)
    assert recipe_features(settings_record(apply_recipe("default", {})))["hidden_aligned"] == 1.0
    assert recipe_features(settings_record(apply_recipe("default", {"losses": {
        "weights": {"logits": 1.0, "hidden": 1.0}, "hidden_projection": "random"}})))["hidden_aligned"] == 0.0


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(schema=3),
     "line 2: written by a newer hwnas (experience schema 3; this version reads up to 2)"),
    (lambda r: r["recipe"]["settings"]["losses"].update(hidden_projection="identity"),
     "line 2: recipe.settings.losses.hidden_projection must be one of aligned, random; got 'identity'"),
])
def test_a_newer_schema_or_an_unknown_start_is_refused_in_one_line(change, message, tmp_path):
    table = tmp_path / "exp.jsonl"
    bad = _now()
    change(bad)
    _write(table, [_now(), bad])
    with pytest.raises(InvalidData) as info:
        read_table(table)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_recommender_tells_random_start_runs_from_aligned_ones(tmp_path):
    # the same recipe on three tasks, once before the fix (schema 1, random start) and once after: two settings
    rows = []
    for k, task in enumerate(("t1", "t2", "t3")):
        for seed in range(2):
            new = _now("default", task, kept=0.9 - 0.01 * seed, feats=float(k + 1))
            rows += [new, _schema1(_now("default", task, kept=0.6 - 0.01 * seed, feats=float(k + 1)))]
    _write(tmp_path / "exp.jsonl", rows)
    table_rows = read_table(tmp_path / "exp.jsonl")  # through the reader, as the CLI does
    rec = recommend({f: 2.0 for f in FEATURES}, ARCH, table_rows, overrides={"steps": 100})
    assert not rec.fallback, rec.reason  # not "every recorded run used the same settings"
    model = Recommender().fit(table_rows)
    aligned = settings_record(apply_recipe("default", {"steps": 100}))
    random = settings_record(apply_recipe("default", {"steps": 100, "losses": {
        "weights": dict(aligned["losses"]["weights"]), "hidden_projection": "random"}}))
    p_aligned, p_random = model.predict({f: 2.0 for f in FEATURES}, [aligned, random], ARCH)
    assert p_aligned > p_random + 0.1  # it learnt the difference from the feature alone


def test_a_model_saved_by_a_previous_format_is_refused_in_one_line():
    rows = [_now(r, t, kept=kept, feats=float(k)) for k, t in enumerate(("t1", "t2"))
            for r, kept in (("default", 0.8), ("logits-only", 0.7))]
    data = json.loads(Recommender(n_estimators=5).fit(rows).to_json())
    old = dict(data, version=1, features=[f for f in data["features"] if f != "hidden_aligned"])
    assert "hidden_aligned" in RECIPE_FEATURES and len(old["features"]) == len(data["features"]) - 1
    kept_target = dict(data, version=2, target="kept fraction")  # same features, the absolute target
    for text, message in ((json.dumps(old), "format version 1; this hwnas reads version 3"),
                          (json.dumps(kept_target), "format version 2; this hwnas reads version 3 (other features or "
                                                    "target); refit it from the experience table"),
                          ("{not json", "not an AutoDistiller model (not valid JSON)"),
                          ("[1]", "not an AutoDistiller model")):
        with pytest.raises(InvalidConfig) as info:
            Recommender.from_json(text)
        assert message in str(info.value) and "\n" not in str(info.value)
    again = Recommender.from_json(json.dumps(data))  # the current format still loads
    assert again.predict({}, [settings_record(apply_recipe("default", {}))], ARCH).shape == (1,)
