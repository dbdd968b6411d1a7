"""``hwnas search``: unit parsing, outputs, verification and the required one-line errors.

Real artefacts: a predictor fitted on the committed tiny CPU profile, a supernet
of space ``tiny`` trained for two steps (see conftest.py).
"""

from __future__ import annotations

import json

import pytest

from tests.cli_run import run_cli


def one_line_error(code, err, expected):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.startswith("hwnas: error")]
    assert len(lines) == 1 and expected in lines[0], err
    return lines[0]


@pytest.fixture
def base_args(real_predictor_path, tiny_supernet_path, tmp_path):
    return ["search", "--predictor", real_predictor_path, "--supernet", tiny_supernet_path, "--out", tmp_path / "run"]


@pytest.mark.slow
def test_search_writes_outputs_and_verifies_on_cpu(base_args, tmp_path, capsys):
    code, out, err = run_cli([*base_args, "--max-latency", "0.08s", "--strategy", "random", "--evaluations", "4",
                              "--verify", "cpu", "--quick"], capsys)
    assert code == 0, err
    run = tmp_path / "run"
    for name in ("config.json", "evaluated.csv", "front.json", "winner.json", "front.png", "verify.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["budget_ms"] == pytest.approx(80.0)  # 0.08s parsed to milliseconds
    assert config["space"] == "tiny" and config["device"] == "cpu" and config["evaluations_done"] == 4
    winner = json.loads((run / "winner.json").read_text())
    assert winner["latency_upper_ms"] <= 80.0 and winner["space"] == "tiny"
    assert winner["supernet"] == str(base_args[4])
    verified = json.loads((run / "verify.json").read_text())
    first = verified["architectures"][0]
    assert "winner" in first["role"] and first["arch"] == winner["arch"] and first["measured_ms"] > 0
    assert "winner:" in out and "within budget" in out and "Pareto front" in out
    # the same folder again is refused, and nothing in it is touched
    before = (run / "evaluated.csv").read_bytes()
    code, _, err = run_cli([*base_args, "--max-latency", "80ms", "--strategy", "random", "--evaluations", "4"], capsys)
    one_line_error(code, err, "already exists and is not empty; pass --resume")
    assert (run / "evaluated.csv").read_bytes() == before


def test_budget_below_the_fastest_architecture(base_args, capsys):
    code, _, err = run_cli([*base_args, "--max-latency", "800us"], capsys)
    line = one_line_error(code, err, "no architecture in space tiny is predicted under 0.8 ms; the fastest is ")
    assert " ms (" in line


@pytest.mark.parametrize("text", ["5 parsecs", "-3ms", "fast"])
def test_unparseable_budget(base_args, capsys, text):
    code, _, err = run_cli([*base_args, "--max-latency", text], capsys)
    one_line_error(code, err, "--max-latency must be")


def test_unknown_strategy(base_args, capsys):
    code, _, err = run_cli([*base_args, "--max-latency", "5ms", "--strategy", "annealing"], capsys)
    one_line_error(code, err, "unknown strategy 'annealing'; strategies are")


def test_predictor_for_another_device_than_verify(base_args, capsys):
    code, _, err = run_cli([*base_args, "--max-latency", "80ms", "--verify", "onnxruntime"], capsys)
    one_line_error(code, err, "asked for device 'onnxruntime' (predictor: 'cpu')")


def test_supernet_and_predictor_of_different_spaces(other_space_predictor_path, tiny_supernet_path, tmp_path, capsys):
    code, _, err = run_cli(["search", "--predictor", other_space_predictor_path, "--supernet", tiny_supernet_path,
                            "--out", tmp_path / "run", "--max-latency", "80ms"], capsys)
    one_line_error(code, err, "was trained on space 'tiny' but predictor")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, expected", [
    (["--budget", "0"], "--budget must be an integer >= 1"),
    (["--max-params", "lots"], "--max-params must be a positive number"),
    (["--max-memory", "-5"], "--max-memory must be positive"),
])
def test_bad_numbers(base_args, capsys, args, expected):
    code, _, err = run_cli([*base_args, "--max-latency", "80ms", *args], capsys)
    one_line_error(code, err, expected)


def test_tie_margin_picks_the_most_parameters_among_the_tied_and_says_so(base_args, tmp_path, capsys):
    code, out, err = run_cli([*base_args, "--max-latency", "80ms", "--strategy", "random", "--evaluations", "4",
                              "--tie-margin", "10"], capsys)  # supernet-loss scores lie far within 10: all tie
    assert code == 0, err
    run = tmp_path / "run"
    winner = json.loads((run / "winner.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert winner["ties"] == config["ties"] and config["ties"]["text"] == "10"
    assert len(config["ties"]["tied"]) == config["evaluations_done"] == 4
    with open(run / "evaluated.csv") as f:
        import csv

        params = [int(r["params"]) for r in csv.DictReader(f) if r["feasible"] == "True"]
    assert winner["params"] == max(params)
    assert "tie margin 10: 4 candidate(s) within it of the best" in out
    code, out, err = run_cli([*base_args, "--max-latency", "80ms", "--strategy", "random", "--evaluations", "4",
                              "--tie-margin", "10", "--resume", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["ties"]["winner"] == config["ties"]["winner"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--tie-margin", "close"], "--tie-margin must be a score difference >= 0 (e.g. 0.005) or a positive multiple "
                                "of the paired standard error (e.g. 2se); got 'close'"),
    (["--tie-margin", "2se"], "tie margin 2se needs an estimator that scores every architecture on the same held-out "
                              "rows (distill-proxy with metric accuracy or agreement); estimator supernet-loss does not"),
])
def test_bad_tie_margin_is_one_line(base_args, tmp_path, capsys, args, expected):
    code, _, err = run_cli([*base_args, "--max-latency", "80ms", *args], capsys)
    one_line_error(code, err, expected)
    assert not (tmp_path / "run").exists()
