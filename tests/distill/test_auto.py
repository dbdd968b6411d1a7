"""AutoDistiller: dataset features, the recommender (real XGBoost) and its fall-back, and the derived news-source task."""

from __future__ import annotations

import csv
import gzip
import json
import math
import statistics

import pytest

from hwnas.distill.auto import (FEATURES, Recommender, dataset_features, nearest_task, ranking_rows, recommend,
                                seed_noise, settings_record, text_features)
from hwnas.distill.data import TaskData, load_task
from hwnas.distill.experience import make_record
from hwnas.distill.recipes import apply_recipe, get_recipe
from hwnas.distill.tasks import (
    derive_label_subset,
    derive_news_source,
    is_dev_article,
    news_source_label,
    split_held_out,
)
from hwnas.errors import InvalidConfig, InvalidData

ARCH = {"layers": 2, "hidden": 128, "heads": 2, "ffn": 512}


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


def _run(name: str, task: str, kept: float, feats: float = 1.0, steps: int = 100, arch=None) -> dict:
    return make_record(recipe_name=name, settings=settings_record(apply_recipe(name, {"steps": steps})),
                       features={f: feats for f in FEATURES}, arch=arch or ARCH, metric="accuracy",
                       student=kept * 0.9, teacher=0.9, steps=steps, task_id=task, source=f"{task}.tsv")


#: The same ordering on every task (mi-alpha 3 points above logits-only, default 3 below), on tasks whose
#: difficulty differs wildly (kept 0.30 to 0.95); the best recipe was tried on the hard tasks only.
_OFFSET = {"mi-alpha": 0.03, "logits-only": 0.0, "default": -0.03}
_PLAN = ((0.30, ("mi-alpha", "logits-only")), (0.35, ("mi-alpha", "default")),
         (0.90, ("logits-only", "default")), (0.95, ("logits-only", "default")))


def _unbalanced(informative: bool) -> list[dict]:
    return [_run(name, f"t{k}", level + _OFFSET[name] - 0.002 * seed, feats=float(k) if informative else 1.0)
            for k, (level, names) in enumerate(_PLAN) for name in names for seed in range(2)]


def test_the_recommender_ranks_within_tasks_so_task_difficulty_does_not_leak_into_the_choice():
    # With the dataset features alike (as SST-2's and the news-source task's size and shape are), a model of the
    # kept fraction itself (format 2) credits mi-alpha with the hard tasks it was tried on and picks logits-only
    # (0.354 against 0.715 predicted); the advantage within each task's group does not depend on the task's level.
    cands = [get_recipe(n) for n in _OFFSET]
    for informative, new in ((False, 1.0), (True, 1.5), (True, 3.5)):
        rec = recommend({f: new for f in FEATURES}, ARCH, _unbalanced(informative), overrides={"steps": 100},
                        candidates=cands)
        assert rec.recipe == "mi-alpha" and not rec.fallback, (informative, new, rec.predicted)
        assert rec.predicted["mi-alpha"] > rec.predicted["default"] + 0.02, rec.predicted
        assert all(abs(v) < 0.1 for v in rec.predicted.values())  # advantages, not kept fractions of 0.3 to 0.95
        assert "predicted advantage +0.0" in rec.reason and "from 16 runs on 4 tasks" in rec.reason


def test_the_target_is_each_runs_advantage_over_the_mean_of_its_groups_recipes():
    rows = [_run("default", "t1", 0.80), _run("default", "t1", 0.82), _run("default", "t1", 0.84),  # three seeds
            _run("minilm", "t1", 0.70),
            _run("minilm", "t1", 0.50, steps=200), _run("default", "t1", 0.40, steps=200),  # another step count
            _run("minilm", "t2", 0.30), _run("minilm", "t2", 0.32)]  # one recipe only: nothing to rank
    kept, y, left_out = ranking_rows(rows)
    assert left_out == 2 and len(kept) == 6 and {r["task"]["id"] for r in kept} == {"t1"}
    # baseline of t1 at 100 steps: 0.76, the mean of default's mean (0.82) and minilm's (0.70), not the mean of
    # the four runs (0.79), which would lean towards the recipe run with more seeds
    assert list(y) == pytest.approx([0.04, 0.06, 0.08, -0.06, 0.05, -0.05])
    other_student = ranking_rows([_run("default", "t1", 0.8), _run("minilm", "t1", 0.7, arch={**ARCH, "layers": 4})])
    assert other_student[0] == [] and other_student[2] == 2


def test_runs_alone_in_their_group_teach_nothing_and_a_table_of_them_falls_back():
    rows = _unbalanced(informative=True)
    alone = [_run(n, f"solo{k}", kept, feats=float(k)) for k, (n, kept) in
             enumerate((("default", 0.99), ("default", 0.98), ("mi-alpha", 0.05), ("logits-only", 0.6)))]
    settings = [settings_record(apply_recipe(n, {"steps": 100})) for n in _OFFSET]
    feats = {f: 2.0 for f in FEATURES}
    with_alone = Recommender().fit(rows + alone)
    assert with_alone.left_out_ == 4
    assert list(with_alone.predict(feats, settings, ARCH)) == list(Recommender().fit(rows).predict(feats, settings, ARCH))
    with pytest.raises(InvalidConfig, match="none of the 4 runs shares its task, student and step count"):
        Recommender().fit(alone)
    many_alone = [_run(n, f"solo{k}", 0.5 + 0.01 * k, feats=float(k)) for k in range(10) for n in ("default",)]
    few = recommend(feats, ARCH, many_alone + [_run("minilm", "solo0", 0.6)])
    assert few.fallback and few.recipe == "default" and few.runs == 2
    assert "too little experience to rank recipes (2 runs share their task, student and steps" in few.reason
    one_task = recommend(feats, ARCH, many_alone + [_run(n, "solo0", 0.6) for n in ("minilm", "logits-only") * 4])
    assert one_task.fallback and "compares recipes on only one task" in one_task.reason
    rec = recommend(feats, ARCH, rows + alone, overrides={"steps": 100})
    assert not rec.fallback and "4 runs without another recipe in their group left out" in rec.reason


def test_seed_noise_pools_the_repeats_of_one_recipe_in_one_group():
    rows = [_run("default", "t1", 0.80), _run("default", "t1", 0.84),  # sd 0.0283, 1 dof
            _run("minilm", "t1", 0.70), _run("minilm", "t1", 0.70), _run("minilm", "t1", 0.76),  # var 0.0012, 2 dof
            _run("minilm", "t1", 0.50, steps=200),  # alone: no repeat
            _run("minilm", "t2", 0.30)]
    noise, dof = seed_noise(rows)
    assert dof == 3 and noise == pytest.approx(math.sqrt((0.0008 * 1 + 0.0012 * 2) / 3))
    assert seed_noise([_run("default", "t1", 0.8), _run("minilm", "t1", 0.7)]) == (0.0, 0)


def test_a_predicted_gain_within_the_seed_noise_keeps_the_default():
    """mi-alpha is 1 point better on every task, but seeds move each run by about 2 points: below the noise the
    recommendation stays default; margin 0 (the plain rule) or quieter seeds let mi-alpha through."""
    def table(spread: float) -> list[dict]:
        return [_run(name, f"t{k}", 0.8 + k * 0.02 + (0.01 if name == "mi-alpha" else 0.0) + spread * (seed - 0.5),
                     feats=float(k)) for k in range(4) for name in ("default", "mi-alpha") for seed in range(2)]
    cands = [get_recipe("default"), get_recipe("mi-alpha")]
    feats = {f: 1.5 for f in FEATURES}
    noisy = recommend(feats, ARCH, table(0.03), overrides={"steps": 100}, candidates=cands)
    gain = noisy.predicted["mi-alpha"] - noisy.predicted["default"]
    assert 0 < gain < noisy.margin and noisy.margin == pytest.approx(seed_noise(table(0.03))[0])
    assert noisy.recipe == "default" and not noisy.fallback
    assert "is within the experience's seed noise" in noisy.reason and noisy.to_dict()["margin"] == noisy.margin
    plain = recommend(feats, ARCH, table(0.03), overrides={"steps": 100}, candidates=cands, margin=0)
    assert plain.recipe == "mi-alpha" and plain.margin == 0.0
    quiet = recommend(feats, ARCH, table(0.002), overrides={"steps": 100}, candidates=cands)
    assert quiet.recipe == "mi-alpha" and quiet.margin < gain
    for bad in (-0.1, float("nan"), "often", True):
        for rows in (table(0.03), table(0.03)[:3]):  # refused with or without enough experience to fit
            with pytest.raises(InvalidConfig, match="margin must be 'auto' or a kept fraction >= 0"):
                recommend(feats, ARCH, rows, candidates=cands, margin=bad)


def _split_tasks() -> list[dict]:
    """mi-alpha wins by 5 points on w1 and w2 (one label count) and loses by 1 on l1 and l2 (another); the label
    count separates them for the trees, but l2 is nearest to a new task on the other features."""
    def feats(a: int, b: float, sep: float) -> dict:
        return {**{k: 0.0 for k in FEATURES}, "num_labels": 2.0 + 7 * a, "len_mean": b, "len_p90": b, "emb_cos": b,
                "emb_sep": sep}
    plan = {"w1": (0, -10.0, 0.05, 0.0), "w2": (0, 20.0, 0.05, 0.0), "l1": (1, 3.0, -0.01, 0.1), "l2": (1, 5.0, -0.01, 0.0)}
    return [make_record(recipe_name=name, settings=settings_record(apply_recipe(name, {"steps": 100})),
                        features=feats(a, b, sep), arch=ARCH, metric="accuracy", student=(kept + 0.002 * seed) * 0.9,
                        teacher=0.9, steps=100, task_id=t, source=f"{t}.tsv")
            for t, (a, b, gain, sep) in plan.items() for name, kept in (("default", 0.8), ("mi-alpha", 0.8 + gain))
            for seed in range(2)]


def _new_task(sep: float) -> dict:
    return {**{k: 0.0 for k in FEATURES}, "num_labels": 2.0, "len_mean": 4.5, "len_p90": 4.5, "emb_cos": 4.5,
            "emb_sep": sep}


def test_nearest_task_scales_each_feature_by_its_spread_and_reports_what_that_task_measured():
    rows = _split_tasks()
    near = nearest_task(_new_task(0.0), rows, "mi-alpha")
    # num_labels: 2 against 9 over a spread of 3.5 (2.0); the three length-like features differ by 0.5 over their
    # spread (about 10.9): l2 at about 2.0, ahead of w1 (three times 14.5 / 10.9) and w2
    sd_b = statistics.pstdev([-10.0, 20.0, 3.0, 5.0])
    assert near["task"] == "l2" and near["gain"] == pytest.approx(-0.01) and near["runs"] == 4
    assert near["distance"] == pytest.approx(math.sqrt(2.0 ** 2 + 3 * (0.5 / sd_b) ** 2), rel=1e-6)
    assert 2.0 < near["distance"] < near["typical"]
    far = nearest_task(_new_task(1.0), rows, "mi-alpha")  # emb_sep: 1.0 where the past tasks spread by 0.04
    assert far["task"] == "l1" and far["distance"] > 5 * far["typical"]
    assert nearest_task(_new_task(0.0), rows, "minilm") is None  # no past task ran minilm


def test_a_pick_that_lost_on_a_near_past_task_keeps_the_default_and_a_task_unlike_all_is_left_to_the_model():
    rows, cands = _split_tasks(), [get_recipe("default"), get_recipe("mi-alpha")]
    near = recommend(_new_task(0.0), ARCH, rows, overrides={"steps": 100}, candidates=cands)
    assert near.predicted["mi-alpha"] - near.predicted["default"] > near.margin  # the trees side with w1 and w2
    assert near.recipe == "default" and not near.fallback and near.nearest["task"] == "l2"
    assert "on the nearest past task (l2, distance 2.0" in near.reason
    assert "mi-alpha measured -0.010 over default" in near.reason and near.to_dict()["nearest"]["task"] == "l2"
    unchecked = recommend(_new_task(0.0), ARCH, rows, overrides={"steps": 100}, candidates=cands, nearest_check=False)
    assert unchecked.recipe == "mi-alpha" and unchecked.nearest is None
    far = recommend(_new_task(1.0), ARCH, rows, overrides={"steps": 100}, candidates=cands)
    assert far.recipe == "mi-alpha" and far.nearest["task"] == "l1" and "nearest" not in far.reason


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


def test_label_subset_keeps_the_asked_classes_and_splits_by_text(tmp_path):
    src = tmp_path / "topics.tsv"
    labels = ["World", "Sports", "Business", "Sci/Tech"]
    rows = [(f"story number {i} about {labels[i % 4].lower()}", labels[i % 4]) for i in range(200)]
    rows.append(rows[1])  # a text seen twice is kept once
    src.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows), encoding="utf-8")
    counts = derive_label_subset(src, tmp_path / "ws", ["World", "Sports"])
    train = load_task(tmp_path / "ws/train.tsv")
    dev = load_task(tmp_path / "ws/dev.tsv", label_names=train.label_names)
    assert train.label_names == ["Sports", "World"] and len(train) + len(dev) == 100
    assert set(train.texts).isdisjoint(dev.texts)
    assert sum(counts["dev"].values()) == len(dev) == sum(
        is_dev_article(t, 0.2) for t, lab in rows[:200] if lab in ("World", "Sports"))
    first = (tmp_path / "ws/dev.tsv").read_bytes()
    src.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in reversed(rows)), encoding="utf-8")
    derive_label_subset(src, tmp_path / "ws2", ["World", "Sports"])  # the split does not depend on row order
    assert sorted(load_task(tmp_path / "ws2/dev.tsv").texts) == sorted(dev.texts)
    assert (tmp_path / "ws/dev.tsv").read_bytes() == first
    with pytest.raises(InvalidData, match="no label 'Sprts'; its labels are Business, Sci/Tech, Sports, World"):
        derive_label_subset(src, tmp_path / "bad", ["World", "Sprts"])
    with pytest.raises(InvalidData, match="at least two labels"):
        derive_label_subset(src, tmp_path / "bad", ["World", "World"])
    assert not (tmp_path / "bad").exists()


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


def test_split_held_out_cuts_where_distill_holds_out_and_refuses_a_file_too_short(tmp_path):
    src = tmp_path / "t.tsv"
    src.write_text("text\tlabel\n" + "".join(f"row {i}\t{i % 2}\n" for i in range(25)))
    train, dev = split_held_out(src, tmp_path / "split")
    assert train.read_text().splitlines()[0] == dev.read_text().splitlines()[0] == "text\tlabel"
    assert [x.split("\t")[0] for x in dev.read_text().splitlines()[1:]] == ["row 23", "row 24"]  # 25 // 10 = 2
    assert len(train.read_text().splitlines()) == 1 + 23
    short = tmp_path / "short.tsv"
    short.write_text("text\tlabel\nonly one\t0\n")
    with pytest.raises(InvalidData, match="at least two rows"):
        split_held_out(short, tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
