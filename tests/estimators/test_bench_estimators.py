"""bench/bench_estimators.py's learned ranker across tasks: fitted on one task's rows, scored on another's.

A small real table (architectures of the built-in space ``small``, two tasks, three latency
bands) and a real XGBoost ranker. The accuracies follow a known relation (a fixture of the
mechanics, not a measurement), the same on both tasks or reversed on the second, so the
cross-task figure must follow the second task's accuracies, not the first's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.space import get_space

from .conftest import load_bench



def bench():
    """bench/bench_estimators.py as a module."""
    return load_bench("bench_estimators")


def relation(a) -> float:
    """Wider is better, deeper slightly worse (monotone in the features the ranker sees)."""
    return 0.55 + 0.0008 * a.hidden - 0.01 * a.layers + 0.00003 * a.ffn


def write_two_task_table(path: Path, *, reverse_second: bool) -> Path:
    """12 ``small`` students in 3 bands on sst2 (one seed), the 8 of the first two bands on agnews."""
    archs = get_space("small").sample_random(12, seed=3)
    fields = ["arch", "layers", "hidden", "heads", "ffn", "space", "band", "task", "seed", "recipe", "steps",
              "accuracy", "parameters", "predicted_ms"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for task in ("sst2", "agnews"):
            for i, a in enumerate(archs):
                band = i % 3
                if task == "agnews" and band == 2:
                    continue
                acc = relation(a) if task == "sst2" or not reverse_second else 1.4 - relation(a)
                w.writerow({"arch": a.key, **a.as_dict(), "space": "small", "band": f"small-b{band}", "task": task,
                            "seed": 0, "recipe": "gt-v1", "steps": 500, "accuracy": f"{min(max(acc, 0), 1):.5f}",
                            "parameters": a.num_parameters() + (1000 if task == "sst2" else 2000),
                            "predicted_ms": f"{10.0 * (band + 1) + 0.01 * i:.3f}"})
    return path


@pytest.mark.parametrize("reverse_second", [False, True])
def test_cross_task_scores_the_other_tasks_rows(tmp_path, reverse_second):
    from hwnas.estimators.truth import read_truth_table

    table = read_truth_table(write_two_task_table(tmp_path / "t.csv", reverse_second=reverse_second))
    be = bench()
    lat = table.select("sst2", "small").latency_of()
    out = be.learned_report(table, "sst2", "small", lat, reps=50)
    assert out["leave_one_band_out"]["students"] == 12 and out["leave_one_band_out"]["tau_within_band"] > 0.5
    cross = out["cross_task"]["agnews/small"]
    assert cross["students"] == 8 and cross["pairs_within_band"] == 2 * 6  # two bands of four
    # fitted on sst2 only; on agnews the relation holds (tau high) or is reversed (tau low): agnews' rows decide
    if reverse_second:
        assert cross["tau_within_band"] < -0.5 and cross["params_same_rows"]["tau_within_band"] < 0
    else:
        assert cross["tau_within_band"] > 0.5
    assert cross["fit_s"] > 0 and cross["score_s_per_arch"] > 0
    assert out["cross_space"] == {}  # one space only


def test_main_reports_cross_task_both_ways(tmp_path, capsys):
    path = write_two_task_table(tmp_path / "t.csv", reverse_second=False)
    be = bench()
    res = tmp_path / "r.json"
    assert be.main(["--table", str(path), "--task", "sst2", "--estimators", "params,learned", "--bootstrap", "50",
                    "--noise-sims", "20", "--results", str(res)]) == 0
    text = capsys.readouterr().out
    assert "ground truth: 12 students of task sst2" in text and "learned sst2/small -> agnews/small" in text
    figures = json.loads(res.read_text())
    assert figures["learned"]["cross_task"]["agnews/small"]["students"] == 8
    assert (figures["recipe"], figures["steps"], figures["table_rows"]) == ("gt-v1", 500, 20)
    # the other way: agnews' two bands are too few for leave-one-band-out, but enough to fit and score sst2
    assert be.main(["--table", str(path), "--task", "agnews", "--estimators", "learned", "--bootstrap", "50",
                    "--noise-sims", "20"]) == 0
    text = capsys.readouterr().out
    assert "learned LOBO" in text and "not available" in text
    assert "learned agnews/small -> sst2/small" in text


def _bench_mos():
    return load_bench("bench_mos")


def test_bench_mos_reads_the_same_students_and_refuses_a_bad_table(tmp_path, capsys):
    from hwnas.errors import InvalidData
    from hwnas.estimators.truth import read_ground_truth

    path = write_two_task_table(tmp_path / "t.csv", reverse_second=False)
    keys, acc, lat = _bench_mos().table_truth(path, "agnews", get_space("small"))
    gt = read_ground_truth(path, task="agnews", space="small")
    assert keys == gt.keys and len(keys) == 8 and acc.tolist() == gt.accuracy.tolist()
    assert lat.tolist() == gt.predicted_ms.tolist()
    mislabelled = tmp_path / "tiny.csv"  # small students under the space name tiny
    mislabelled.write_text(path.read_text().replace(",small,", ",tiny,"))
    with pytest.raises(InvalidData, match="12 students of task 'sst2' in space 'tiny' lie outside that space"):
        _bench_mos().table_truth(mislabelled, "sst2", get_space("tiny"))
    broken = tmp_path / "broken.csv"
    broken.write_text(path.read_text().replace("gt-v1,500,", "gt-v1,five hundred,", 1))
    assert _bench_mos().main(["--table", str(broken), "--task", "sst2", "--space", "small"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2: steps must be an integer >= 0; got 'five hundred'" in err


def test_space_masks_keep_only_pairs_inside_one_space():
    import numpy as np

    be = bench()
    within = np.ones((5, 5), dtype=bool)
    within[2, 3] = within[3, 2] = False  # the two tiny students lie in different bands
    masks = be.space_masks(["small", "small", "tiny", "tiny", "solo"], within)
    assert sorted(masks) == ["small"]  # tiny has no within-band pair left, solo has no pair at all
    assert masks["small"][0, 1] and not masks["small"][0, 2] and not masks["small"][0, 4]


def test_the_committed_table_gets_a_noise_ceiling_per_space(tmp_path, capsys):
    """On the real ground truth the two spaces' seed noise differs by an order of magnitude, so the ceiling of
    each space's bands is printed beside the pooled one, with its own pair count."""
    root = Path(__file__).resolve().parents[2]
    res = tmp_path / "r.json"
    assert bench().main(["--table", str(root / "bench/ground_truth/table.csv"), "--task", "sst2", "--estimators",
                         "params", "--bootstrap", "20", "--noise-sims", "50", "--results", str(res)]) == 0
    out = capsys.readouterr().out
    figures = json.loads(res.read_text())
    by_space = figures["noise_ceiling"]["tau_within_band_truth_vs_replicate_by_space"]
    params = figures["estimators"]["params"]["tau_within_band_by_space"]
    assert set(by_space) == set(params) == {"small", "tiny"}
    assert by_space["small"]["pairs"] + by_space["tiny"]["pairs"] == figures["pairs_within_band"]
    assert "small bands only" in out and "within bands by space: small" in out


def test_space_keeps_one_spaces_students(tmp_path, capsys):
    root = Path(__file__).resolve().parents[2]
    res = tmp_path / "r.json"
    assert bench().main(["--table", str(root / "bench/ground_truth/table.csv"), "--task", "sst2", "--space", "small",
                         "--estimators", "params", "--bootstrap", "20", "--noise-sims", "50", "--results",
                         str(res)]) == 0
    figures = json.loads(res.read_text())
    assert figures["students"] == 32 and set(figures["estimators"]["params"]["tau_within_band_by_space"]) == {"small"}


def test_distill_proxy_reports_every_metric_of_one_run(tmp_path, capsys, est_task, est_task_teacher, est_space):
    """The proxy runs once per student (real tiny teacher and students) and each metric is a row of its own."""
    from .conftest import write_synthetic_table

    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True)
    rows = est_task.read_text(encoding="utf-8")
    (data / "sst2/train.tsv").write_text(rows, encoding="utf-8")
    (data / "sst2/dev.tsv").write_text(rows, encoding="utf-8")
    table = write_synthetic_table(tmp_path / "gt.csv", est_space.enumerate()[:9], bands=3)
    res, cache = tmp_path / "r.json", tmp_path / "runs.json"
    argv = ["--table", str(table), "--task", "sst2", "--data", str(data), "--estimators", "distill-proxy",
            "--teacher", str(est_task_teacher), "--distill-proxy-steps", "2", "--distill-proxy-eval", "10,40",
            "--distill-proxy-cache", str(cache), "--bootstrap", "20", "--results", str(res)]
    assert bench().main(argv) == 0
    out = capsys.readouterr().out
    figures = json.loads(res.read_text())["estimators"]
    assert set(figures) == {"distill-proxy:accuracy", "distill-proxy:agreement", "distill-proxy:kd"}
    for label, rec in figures.items():
        assert label in out and rec["steps"] == 2 and rec["eval_offset"] == 10 and rec["eval_rows"] == 40
        assert rec["cost_s_per_arch"] > 0 and len(rec["scores"]) == 9
    runs = json.loads(cache.read_text())["runs"]
    assert len(runs) == 9
    kd = figures["distill-proxy:kd"]["scores"]
    assert all(kd[k] == pytest.approx(v["kd"]) for k, v in runs.items())
    # a second invocation gives the same figures (read back from the cache file)
    assert bench().main(argv) == 0
    assert json.loads(res.read_text())["estimators"]["distill-proxy:kd"]["scores"] == kd
    # slices of the evaluation rows, read from the same runs' per-row records
    assert bench().main([*argv, "--distill-proxy-slices", "10:30,30:50"]) == 0
    sliced = json.loads(res.read_text())["estimators"]
    for key, run in runs.items():
        for m in ("accuracy", "agreement"):
            a, b = sliced[f"distill-proxy:{m}@10:30"]["scores"][key], sliced[f"distill-proxy:{m}@30:50"]["scores"][key]
            assert (a + b) / 2 == pytest.approx(run[m])
    # earlier steps of one run: a new cache (the settings differ), figures at step 1 and at the end
    curve = [*argv[:-4], "--distill-proxy-cache", str(tmp_path / "curve.json"), "--bootstrap", "20", "--results", str(res),
             "--distill-proxy-record-at", "1", "--distill-proxy-slices", "10:30"]
    assert bench().main(curve) == 0
    figs = json.loads(res.read_text())["estimators"]
    assert {"distill-proxy@1:accuracy", "distill-proxy@1:kd", "distill-proxy@1:accuracy@10:30",
            "distill-proxy:accuracy@10:30"} <= set(figs)
    assert figs["distill-proxy@1:kd"]["steps"] == 1 and figs["distill-proxy:kd"]["steps"] == 2
    assert figs["distill-proxy@1:kd"]["cost_s_per_arch"] == pytest.approx(figs["distill-proxy:kd"]["cost_s_per_arch"] / 2)
    assert figs["distill-proxy:kd"]["scores"] == pytest.approx(kd)  # recording step 1 changed nothing at the end
    assert bench().main([*argv, "--distill-proxy-slices", "0:20"]) == 2  # rows 0..10 were not scored
    assert "is not inside the proxy's evaluation rows 10:50" in capsys.readouterr().err
    # whether the rows resolve the within-band pairs, from the same per-row records
    assert bench().main([*argv, "--row-resolution", "10:50"]) == 0
    resolution = json.loads(res.read_text())["row_resolution"]
    assert resolution["rows"] == 40 and resolution["slice"] == "10:50" and resolution["pairs"] > 0
    assert 0 <= resolution["pairs_beyond_2se"] <= resolution["pairs"]
    assert "NOISE FLOOR (evaluation rows)" in capsys.readouterr().out
    assert bench().main([*argv, "--row-resolution", "0:20"]) == 2
    assert "--row-resolution takes one slice inside the proxy's evaluation rows 10:50" in capsys.readouterr().err
    # a partial run: only the students with a cached run are judged, nothing is trained
    saved = json.loads(cache.read_text())
    saved["runs"] = dict(list(saved["runs"].items())[:6])
    cache.write_text(json.dumps(saved))
    assert bench().main([*argv, "--only-cached"]) == 0
    assert "--only-cached: 6 of 9 students have a run" in capsys.readouterr().out
    assert json.loads(res.read_text())["students"] == 6
    # runs of other settings are not passed off as these
    assert bench().main([*argv, "--only-cached", "--distill-proxy-steps", "3"]) == 2
    assert "holds runs of other settings" in capsys.readouterr().err
    # another seed is other settings too: the seed reaches the proxy
    assert bench().main([*argv, "--only-cached", "--distill-proxy-seed", "1"]) == 2
    assert "holds runs of other settings" in capsys.readouterr().err


@pytest.mark.parametrize("text,ok", [("0:2000,2000:6735", [(0, 2000), (2000, 6735)]), ("5:5", None), ("a:3", None),
                                     ("3", None), ("", None)])
def test_distill_proxy_slices_are_start_stop_ranges(text, ok):
    import argparse

    if ok is not None:
        assert bench()._slices(text) == ok
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="START:STOP"):
            bench()._slices(text)


@pytest.mark.parametrize("text,ok", [("0,2000", (0, 2000)), ("2000,2000", (2000, 2000)), ("5,0", None),
                                     ("-1,3", None), ("3", None)])
def test_distill_proxy_eval_takes_a_first_row_from_zero(text, ok, capsys):
    import argparse

    be = bench()
    if ok is not None:
        assert be._offset_rows(text) == ok
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="expected OFFSET,ROWS"):
            be._offset_rows(text)


def test_row_resolution_counts_the_pairs_the_rows_tell_apart():
    """Per-row records of three students in one band: a clear gap is resolved, a gap of two rows in 400 is not."""
    rows = 400
    base = np.zeros(rows, dtype=bool)
    base[:300] = True  # 75%
    near = base.copy()
    near[300:302] = True  # 75.5%: two rows apart
    far = base.copy()
    far[300:380] = True  # 95%
    mask = np.ones((3, 3), dtype=bool)
    np.fill_diagonal(mask, False)
    r = bench().row_resolution(np.array([base, near, far]), mask)
    assert r["rows"] == rows and r["pairs"] == 3
    assert r["pairs_beyond_2se"] == 2  # base-far and near-far; base-near differ by 2 rows, within noise
    assert r["median_gap_points"] == pytest.approx(19.5)
