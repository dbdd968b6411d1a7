"""``hwnas estimator fit`` and ``hwnas search --estimator learned``: real files, real XGBoost, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwnas.space import get_space
from tests.cli_run import run_cli
from tests.estimators.conftest import write_synthetic_table

PROFILE = Path(__file__).resolve().parents[1] / "predictors" / "data" / "cpu-tiny.jsonl"


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory) -> Path:
    """A synthetic ground-truth table of the built-in space ``tiny`` (a fixture of the mechanics)."""
    return write_synthetic_table(tmp_path_factory.mktemp("gt") / "table.csv", get_space("tiny").enumerate(), bands=4,
                                 space="tiny")


def test_fit_writes_the_model_and_refuses_to_overwrite_it(tiny_table, tmp_path, capsys):
    out = tmp_path / "learned"
    code, stdout, err = run_cli(["estimator", "fit", "--table", tiny_table, "--task", "sst2", "--out", out], capsys)
    assert code == 0, err
    assert "fitted learned estimator on 90 students in 4 bands (task sst2, space tiny)" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["hwnas.json", "manifest.json", "model.json"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run_cli(["estimator", "fit", "--table", tiny_table, "--task", "sst2", "--out", out], capsys)
    assert code == 2 and err.count("\n") == 1 and "already holds a learned estimator; pass --overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    code, stdout, err = run_cli(["estimator", "fit", "--table", tiny_table, "--task", "sst2", "--out", out,
                                 "--overwrite", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["space"]["name"] == "tiny"


def test_a_bad_table_is_one_line_exit_2_and_the_model_in_out_is_untouched(tiny_table, tmp_path, capsys):
    out = tmp_path / "learned"
    assert run_cli(["estimator", "fit", "--table", tiny_table, "--task", "sst2", "--out", out], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    lines = tiny_table.read_text().splitlines()
    bad = tmp_path / "dup.csv"
    bad.write_text("\n".join([*lines, lines[3]]) + "\n")
    for table, task, fragment in [(bad, "sst2", "appears twice"), (tiny_table, "agnews", "no row of task 'agnews'"),
                                  (tmp_path / "absent.csv", "sst2", "does not exist")]:
        code, _stdout, err = run_cli(["estimator", "fit", "--table", table, "--task", task, "--out", out,
                                     "--overwrite"], capsys)
        assert code == 2 and fragment in err and err.startswith("hwnas: error: ") and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.fixture(scope="module")
def tiny_predictor(tmp_path_factory) -> Path:
    from hwnas.predictors.bundle import save_bundle
    from hwnas.predictors.training import fit_predictor, load_measurements

    fitted = fit_predictor(load_measurements(PROFILE), tune_hyperparameters=False,
                           params={"n_estimators": 10, "max_depth": 2}, n_folds=3)
    return save_bundle(fitted, tmp_path_factory.mktemp("predictor") / "cpu-tiny.hwnas")


def test_search_with_the_learned_estimator(tiny_table, tiny_predictor, tmp_path, capsys):
    model = tmp_path / "learned"
    assert run_cli(["estimator", "fit", "--table", tiny_table, "--task", "sst2", "--out", model], capsys)[0] == 0
    base = ["search", "--predictor", tiny_predictor, "--max-latency", "100ms", "--strategy", "random",
            "--evaluations", "6", "--quiet", "--json"]
    code, stdout, err = run_cli([*base, "--estimator", "learned", "--estimator-path", model, "--out",
                                 tmp_path / "s"], capsys)
    assert code == 0, err
    winner = json.loads(stdout)["winner"]
    assert winner is not None
    # the ranker's scores compare only within 5% of predicted latency: the winner is the best of the band at the
    # top of the budget, and every architecture of that band was scored (beyond --evaluations 6 if need be)
    import csv

    import numpy as np

    from hwnas.estimators.learned import load_learned
    from hwnas.predictors.bundle import load_bundle
    from hwnas.search.problem import SearchProblem

    problem = SearchProblem(space="tiny", latency=load_bundle(tiny_predictor), budget_ms=100.0)
    feasible = np.flatnonzero(problem.feasible)
    top = problem.latency_ms[feasible].max()
    band = {problem.candidates[i].key for i in feasible if problem.latency_ms[i] * 1.05 >= top}
    assert 1 < len(band) < len(feasible)  # a real restriction on this problem
    with (tmp_path / "s/evaluated.csv").open() as fh:
        scored = {f"layers={r['layers']},hidden={r['hidden']},heads={r['heads']},ffn={r['ffn']}" for r in csv.DictReader(fh)}
    assert band <= scored
    ranker = load_learned(model)
    best = max(band, key=lambda k: float(ranker.predict([problem.candidates[problem.index(k)]])[0]))
    win_key = ",".join(f"{k}={winner['arch'][k]}" for k in ("layers", "hidden", "heads", "ffn"))
    assert win_key == best
    config = json.loads((tmp_path / "s/config.json").read_text())
    assert config["winner_band"] == {"within": 0.05, "min_latency_ms": pytest.approx(min(
        problem.latency_ms[problem.index(k)] for k in band)), "architectures": len(band)}
    code, _, err = run_cli([*base, "--estimator", "params", "--estimator-path", model, "--out", tmp_path / "s2"], capsys)
    assert code == 2 and "--estimator-path is the fitted model of the learned estimator" in err
    code, _, err = run_cli([*base, "--estimator", "learned", "--out", tmp_path / "s3"], capsys)
    assert code == 2 and "needs a fitted model: --estimator-path" in err


def test_search_refuses_a_model_of_another_space(tiny_predictor, tmp_path, capsys):
    small = get_space("small")
    table = write_synthetic_table(tmp_path / "small.csv", small.sample_random(24, seed=0), bands=3, space="small")
    model = tmp_path / "learned-small"
    assert run_cli(["estimator", "fit", "--table", table, "--task", "sst2", "--out", model], capsys)[0] == 0
    code, _, err = run_cli(["search", "--predictor", tiny_predictor, "--max-latency", "50ms", "--strategy", "random",
                            "--evaluations", "4", "--quiet", "--estimator", "learned", "--estimator-path", model,
                            "--out", tmp_path / "s"], capsys)
    assert code == 2 and "fitted on space 'small' but the search is over space 'tiny'" in err, err
    assert not (tmp_path / "s").exists()


def test_estimator_list_names_every_estimator_with_its_needs_and_options(capsys):
    from hwnas.estimators import ESTIMATORS

    code, stdout, err = run_cli(["estimator", "list", "--json"], capsys)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(stdout)}
    assert set(rows) == set(ESTIMATORS.names())
    assert rows["distill-proxy"]["needs"] == ["task", "teacher"]
    assert rows["distill-proxy"]["options"]["steps"] == 100 and rows["task-proxy"]["options"]["steps"] == 60
    assert rows["params"]["options"] == {}
    # a parent's settings reached through **kwargs are listed too
    assert {"rows", "max_len", "eta"} <= set(rows["wpca"]["options"])
    code, stdout, _ = run_cli(["estimator", "list"], capsys)
    assert code == 0 and "distill-proxy    needs --task, --teacher" in stdout and "steps=100" in stdout
    assert "learned          needs --estimator-path:" in stdout and rows["learned"]["needs"] == ["path"]
