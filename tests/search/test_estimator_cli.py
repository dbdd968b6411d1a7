"""``hwnas search --estimator/--screen``: the estimator ladder from the command line (real predictor and supernet)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.search.base import create_strategy
from tests.cli_run import run_cli
from tests.search.conftest import synthetic_problem
from tests.search.test_cli import one_line_error


def test_search_with_a_free_estimator_needs_no_supernet(real_predictor_path, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--estimator", "params",
                                 "--max-latency", "80ms", "--strategy", "random", "--evaluations", "5", "--out", out], capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["estimator"] == "params" and config["space"] == "tiny"
    winner = json.loads((out / "winner.json").read_text())
    evaluated = (out / "evaluated.csv").read_text().splitlines()
    assert len(evaluated) == 6  # header + 5 evaluations
    # with params as the score, the winner is the largest of what was evaluated
    from hwnas.space import Architecture

    scores = [float(line.split(",")[evaluated[0].split(",").index("score")]) for line in evaluated[1:]]
    assert Architecture.from_dict(winner["arch"]).num_parameters() == max(scores)


def test_screen_spends_the_expensive_estimator_on_the_best_screened(real_predictor_path, tiny_supernet_path, tmp_path,
                                                                   capsys):
    out = tmp_path / "two"
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--supernet", tiny_supernet_path,
                            "--screen", "params", "--estimator", "supernet-loss", "--max-latency", "80ms",
                            "--evaluations", "4", "--out", out], capsys)
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] == "screen" and config["strategy_options"]["screen"] == "params"
    assert config["estimator"].startswith("supernet-loss:tiny@")


def test_screen_bands_one_spends_every_evaluation_on_the_best_screened(real_predictor_path, tmp_path, capsys):
    """--screen-bands 1: the evaluations go to the top of the screen (the most parameters), not round the bands."""
    import csv

    runs = {}
    for bands in (1, 4):
        out = tmp_path / f"b{bands}"
        code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--screen", "params", "--estimator",
                                "flops", "--screen-bands", str(bands), "--max-latency", "80ms", "--evaluations", "4",
                                "--out", out], capsys)
        assert code == 0, err
        assert json.loads((out / "config.json").read_text())["strategy_options"]["bands"] == bands
        with open(out / "evaluated.csv") as f:
            runs[bands] = sorted(int(r["params"]) for r in csv.DictReader(f))
    from hwnas.search.problem import SearchProblem
    from hwnas.predictors import load_predictor

    problem = SearchProblem(space="tiny", latency=load_predictor(real_predictor_path), budget_ms=80.0)
    top4 = sorted(problem.params[problem.feasible])[-4:]
    assert runs[1] == [int(p) for p in top4]
    assert runs[4] != runs[1]  # round the bands: smaller students are evaluated too


@pytest.mark.parametrize("args,expected", [
    (["--estimator", "params", "--screen-bands", "2"], "--screen-bands only applies with --screen NAME"),
    (["--estimator", "params", "--screen", "flops", "--screen-bands", "0"], "--screen-bands must be an integer >= 1"),
    (["--estimator", "nope"], "--estimator: unknown estimator 'nope'; known: params"),
    (["--estimator", "supernet-loss"], "estimator 'supernet-loss' needs --supernet"),
    (["--estimator", "task-proxy"], "estimator 'task-proxy' needs --task"),
    (["--estimator", "distill-proxy"], "estimator 'distill-proxy' needs --task"),
    (["--estimator", "params", "--screen", "flops", "--strategy", "evolution"], "--screen chooses the strategy"),
])
def test_bad_estimator_choices_are_one_line(real_predictor_path, tmp_path, capsys, args, expected):
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--max-latency", "80ms", "--out",
                            tmp_path / "r", *args], capsys)
    one_line_error(code, err, expected)
    assert not (tmp_path / "r").exists()


def test_distill_proxy_without_a_task_teacher_is_one_line(real_predictor_path, tmp_path, capsys):
    task = tmp_path / "task.tsv"
    task.write_text("sentence\tlabel\n" + "".join(f"row {i}\t{i % 2}\n" for i in range(20)), encoding="utf-8")
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--max-latency", "80ms", "--estimator",
                            "distill-proxy", "--task", task, "--out", tmp_path / "r"], capsys)
    one_line_error(code, err, "distill-proxy needs a teacher fine-tuned on the task (--teacher FOLDER")
    assert not (tmp_path / "r").exists()


def test_without_an_estimator_or_a_supernet_the_parameter_count_ranks_and_says_so(real_predictor_path, tmp_path,
                                                                                   capsys):
    out = tmp_path / "d"
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--max-latency", "80ms", "--strategy",
                            "random", "--evaluations", "3", "--out", out], capsys)
    assert code == 0, err
    assert "estimator: params (the default without --supernet" in err
    assert json.loads((out / "config.json").read_text())["estimator"] == "params"


def test_deprecated_metric_still_works_and_says_so(real_predictor_path, tiny_supernet_path, tmp_path, capsys):
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--supernet", tiny_supernet_path,
                            "--metric", "loss", "--max-latency", "80ms", "--strategy", "random", "--evaluations", "2",
                            "--out", tmp_path / "m"], capsys)
    assert code == 0, err
    assert "--metric is deprecated; use --estimator supernet-loss" in err


def test_screen_strategy_proposes_each_bands_best_first_slowest_band_first():
    problem = synthetic_problem()
    strat = create_strategy("screen", screen="params", bands=3, seed=0).setup(problem)
    feasible = np.flatnonzero(problem.feasible)
    by_latency = feasible[np.argsort(-problem.latency_ms[feasible], kind="stable")]
    bands = np.array_split(by_latency, 3)
    first = strat.ask(3)
    for arch, band in zip(first, bands, strict=True):
        best = max(band, key=lambda i: problem.params[i])
        assert problem.params[problem.index(arch)] == problem.params[best]
    # every feasible architecture is proposed exactly once before the strategy runs dry
    seen = [problem.index(a) for a in first]
    strat.tell(first, [0.0] * 3)
    while True:
        batch = strat.ask(5)
        if not batch:
            break
        seen += [problem.index(a) for a in batch]
        strat.tell(batch, [0.0] * len(batch))
    assert sorted(seen) == sorted(feasible.tolist())


def test_screen_strategy_rejects_bad_options():
    from hwnas.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match="bands must be an integer >= 1"):
        create_strategy("screen", bands=0)
    with pytest.raises(InvalidConfig, match="unknown accuracy estimator"):
        create_strategy("screen", screen="nope")


def test_an_estimator_that_cannot_serve_the_space_is_one_line(real_predictor_path, tmp_path, capsys):
    """The tiny test teacher (2 layers, 64 wide) cannot provide slices for space tiny (up to 3 layers, 192 wide)."""
    from tests.supernet.conftest import make_teacher

    teacher = make_teacher(tmp_path / "t")
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--estimator", "wpca", "--teacher", teacher,
                            "--max-latency", "80ms", "--out", tmp_path / "r"], capsys)
    one_line_error(code, err, "is larger than the teacher")
    assert not (tmp_path / "r").exists()


def test_estimator_options_reach_the_estimator_and_are_recorded(real_predictor_path, tiny_supernet_path, tmp_path,
                                                                 capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--supernet", tiny_supernet_path,
                            "--estimator", "attn-confidence", "--estimator-option", "rows=8",
                            "--estimator-option", "max_len=16", "--max-latency", "80ms", "--strategy", "random",
                            "--evaluations", "2", "--out", out], capsys)
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["estimator_options"] == {"rows": 8, "max_len": 16}
    # the option really changed the estimator: rows=1 is below what it accepts
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--supernet", tiny_supernet_path,
                            "--estimator", "attn-confidence", "--estimator-option", "rows=1", "--max-latency", "80ms",
                            "--out", tmp_path / "bad"], capsys)
    one_line_error(code, err, "rows must be an integer >= 2; got 1")


@pytest.mark.parametrize("args,expected", [
    (["--estimator", "params", "--estimator-option", "steps=3"],
     "--estimator-option: estimator 'params' has no option 'steps'; it takes none"),
    (["--estimator", "task-proxy", "--estimator-option", "stpes=3"],
     "estimator 'task-proxy' has no option 'stpes'; its options: batch_size, cache, eval_rows, lr, max_len, seed, "
     "steps, threads, train_rows"),
    (["--estimator", "params", "--estimator-option", "steps"], "--estimator-option expects KEY=VALUE; got 'steps'"),
])
def test_bad_estimator_options_are_one_line(real_predictor_path, tmp_path, capsys, args, expected):
    code, _, err = run_cli(["search", "--predictor", real_predictor_path, "--max-latency", "80ms", "--out",
                            tmp_path / "r", *args], capsys)
    one_line_error(code, err, expected)
    assert not (tmp_path / "r").exists()
