"""AutoDistiller: dataset features, the recommender (real XGBoost) and its fall-back, and the derived news-source task."""

from __future__ import annotations

import csv
import gzip
import json
import math

import pytest

from hwnas.distill.auto import (FEATURES, Recommender, dataset_features, recommend, settings_record, text_features)
from hwnas.distill.data import TaskData, load_task
from hwnas.distill.experience import make_record
from hwnas.distill.recipes import apply_recipe, get_recipe
from hwnas.distill.tasks import derive_news_source, is_dev_article, news_source_label


def _task(texts, labels):
    names = sorted(set(labels))
    return TaskData(list(texts), None, [names.index(x) for x in labels], "classification", [str(n) for n in names])


def test_text_features_by_hand():
    f = text_features(_task(["a b", "a b c d", "x", "y y"], ["p", "p", "p", "n"]))
    assert f["num_labels"] == 2 and f["pair"] == 0 and f["len_mean"] == pytest.approx(9 / 4)
    assert f["majority"] == 0.75
    assert f["label_entropy"] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2))


def test_embedding_features_see_how_separable_the_labels_are():
    sport = ["the striker scored twice in the final", "the team won the league title", "a late goal won the cup",
             "the coach praised his defenders", "the goalkeeper saved a penalty", "fans cheered the winning team"]
    money = ["shares fell as interest rates rose", "the bank raised its profit forecast", "oil prices hit a record",
             "investors sold bonds on inflation fears", "the company reported higher revenue", "markets slid after data"]
    true = dataset_features(_task(sport + money, ["s"] * 6 + ["m"] * 6))
    mixed = dataset_features(_task(sport + money, ["s", "m"] * 6))
    assert set(true) == set(FEATURES) and 0 < true["emb_cos"] < 1
    assert true["emb_sep"] > 2 * mixed["emb_sep"]
    assert true["emb_cos"] == pytest.approx(mixed["emb_cos"])  # the labels do not change the texts' geometry


def _rows(best: str, tasks=("t1", "t2", "t3"), other: str = "default"):
    rows = []
    for k, t in enumerate(tasks):
        feats = {f: float(k + 1) for f in FEATURES}
        for name, kept in ((best, 0.95), (other, 0.80)):
            for seed in range(2):
                rows.append(make_record(recipe_name=name, settings=settings_record(apply_recipe(name, {"steps": 100})),
                                        features=feats, arch={"layers": 2, "hidden": 128, "heads": 2, "ffn": 512},
                                        metric="accuracy", student=kept * 0.9 - 0.001 * seed, teacher=0.9, steps=100,
                                        task_id=t, source=f"{t}.tsv"))
    return rows


def test_the_recommender_learns_which_recipe_keeps_more_and_falls_back_without_experience():
    arch = {"layers": 2, "hidden": 128, "heads": 2, "ffn": 512}
    new = {f: 2.5 for f in FEATURES}
    rec = recommend(new, arch, _rows("logits-only"), overrides={"steps": 100})
    assert rec.recipe == "logits-only" and not rec.fallback and rec.predicted["logits-only"] > rec.predicted["default"]
    pair = [get_recipe("logits-only"), get_recipe("minilm")]
    rec = recommend(new, arch, _rows("minilm", other="logits-only"), overrides={"steps": 100}, candidates=pair)
    assert rec.recipe == "minilm" and set(rec.predicted) == {"logits-only", "minilm"}
    few = recommend(new, arch, _rows("minilm")[:3])
    assert few.recipe == "default" and few.fallback and "too little experience (3 usable runs" in few.reason
    one_task = recommend(new, arch, _rows("minilm", tasks=("t1",)) * 3)
    assert one_task.fallback and "only one task" in one_task.reason


def test_the_recommender_round_trips_through_json_without_pickle():
    rows = _rows("logits-only")
    model = Recommender().fit(rows)
    again = Recommender.from_json(model.to_json())
    feats = {f: 2.0 for f in FEATURES}
    settings = [settings_record(apply_recipe(n, {})) for n in ("default", "logits-only")]
    arch = {"layers": 2, "hidden": 128, "ffn": 512}
    assert list(again.predict(feats, settings, arch)) == pytest.approx(list(model.predict(feats, settings, arch)))
    assert json.loads(model.to_json())["features"][: len(FEATURES)] == list(FEATURES)


def test_news_source_task_is_derived_deterministically(tmp_path):
    src = tmp_path / "news.csv.gz"
    outlets = ["http://www.alpha.com/a/{}", "https://beta.org/x?id={}", "http://gamma.net/{}"]
    with gzip.open(src, "wt", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["article_id", "publish_date", "article_source_link", "title", "subtitle", "text"])
        for i in range(90):
            if i % 3 == 2 and i > 5:  # gamma.net gets only 2 articles and is dropped
                continue
            w.writerow([i, "2017/1/1", outlets[i % 3].format(i), f"Title {i}", "", f"Body\tof article {i}\nwith lines"])
    counts = derive_news_source(src, tmp_path / "task", min_per_class=5)
    assert counts["labels"] == ["alpha.com", "beta.org"] and counts["dropped"] == {"gamma.net": 2}
    train = load_task(tmp_path / "task/train.tsv")
    dev = load_task(tmp_path / "task/dev.tsv", label_names=train.label_names)
    assert len(train) + len(dev) == 60 and len(dev) == sum(is_dev_article(str(i), 0.2) for i in range(90) if i % 3 < 2)
    assert "Title 3 Body of article 3 with lines" in train.texts + dev.texts
    first = (tmp_path / "task/train.tsv").read_bytes()
    derive_news_source(src, tmp_path / "task", min_per_class=5)
    assert (tmp_path / "task/train.tsv").read_bytes() == first
    assert news_source_label("http://www.abcnews.go.com/x") == "abcnews.go.com"


def test_cli_recipe_auto_recommends_runs_and_records_the_choice(tiny_teacher, tmp_path, capsys):
    from hwnas.cli.main import main
    from hwnas.data import embedded_path
    from hwnas.distill.experience import append_record, read_table
    from hwnas.distill.recipes import RECIPES

    table = tmp_path / "exp.jsonl"
    for rec in _rows("logits-only"):
        append_record(table, rec)
    out = tmp_path / "student"
    with pytest.raises(SystemExit) as info:
        main(["distill", "--arch", "L1-H32-A2-I64", "--task", str(embedded_path("sst2/train.tsv")), "--limit", "60",
              "--teacher", str(tiny_teacher), "--out", str(out), "--recipe", "auto", "--steps", "3", "--teacher-steps", "3",
              "--batch-size", "8", "--max-len", "24", "--no-measure", "--quiet", "--experience", str(table)])
    err = capsys.readouterr().err
    assert info.value.code == 0, err
    chosen = json.loads((out / "recommendation.json").read_text())
    assert chosen["recipe"] in RECIPES and RECIPES[chosen["recipe"]].candidate and not chosen["fallback"]
    assert f"AutoDistiller: recipe {chosen['recipe']}" in err and chosen["runs"] >= len(_rows("logits-only"))
    assert json.loads((out / "report.json").read_text())["recipe"]["name"] == chosen["recipe"]
    assert len(read_table(table)) == len(_rows("logits-only")) + 1  # this run was appended
