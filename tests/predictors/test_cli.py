"""``hwnas predictor`` and ``hwnas predict``: outputs, one-line errors and exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from hwnas.cli.main import main
from tests.cli_run import run_cli


@pytest.fixture(scope="module")
def cli_bundle(tmp_path_factory, profile_path):
    out = tmp_path_factory.mktemp("cli") / "cpu.hwnas"
    with pytest.raises(SystemExit) as exc:
        main(["predictor", "fit", str(profile_path), "--out", str(out), "--folds", "3"])
    assert exc.value.code == 0
    return out


def test_fit_prints_cross_validated_accuracy(profile_path, tmp_path, capsys):
    out = tmp_path / "p.hwnas"
    code, stdout, _ = run_cli(["predictor", "fit", profile_path, "--out", out, "--folds", "3"], capsys)
    assert code == 0 and out.is_file()
    assert "cross-validated" in stdout and "within" in stdout and "saved" in stdout
    code, _, err = run_cli(["predictor", "fit", profile_path, "--out", out], capsys)
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1


def test_show_eval_predict(cli_bundle, profile_path, capsys):
    code, out, _ = run_cli(["predictor", "show", cli_bundle], capsys)
    assert code == 0 and "cpu threads=1 dtype=fp32" in out and "xgboost" in out and "layers 1..3" in out
    code, out, _ = run_cli(["predictor", "show", cli_bundle, "--json"], capsys)
    assert code == 0 and json.loads(out)["device"]["name"] == "cpu"
    code, out, _ = run_cli(["predictor", "eval", cli_bundle, profile_path, "--json"], capsys)
    m = json.loads(out)
    assert code == 0 and m["n"] == 30 and m["outside_domain"] == 0
    # the share within ±10% is what the bundle's own predictions give on those records
    import numpy as np

    from hwnas.predictors import load_predictor
    from hwnas.profiling.store import read_records

    recs = list(read_records(profile_path))
    pred = load_predictor(cli_bundle).predict([{d: r[d] for d in ("layers", "hidden", "heads", "ffn")} for r in recs],
                                              seq_len=[r["seq_len"] for r in recs], batch_size=[r["batch_size"] for r in recs])
    share = float(np.mean(np.abs(pred / np.array([r["latency_ms"] for r in recs]) - 1) <= 0.10))
    assert m["within_10"] == pytest.approx(share)
    code, out, _ = run_cli(["predict", "--predictor", cli_bundle, "--arch", "layers=2,hidden=128,heads=2,ffn=512",
                            "--arch", "L3-H192-A4-I768", "--json"], capsys)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 2
    assert rows[0]["latency_upper_ms"] > rows[0]["latency_ms"] > 0 and rows[1]["arch"]["layers"] == 3
    code, out, err = run_cli(["predict", "--predictor", cli_bundle, "--arch", "layers=6,hidden=384,heads=8,ffn=1536"], capsys)
    assert code == 0 and "outside the training domain" in err and "ms" in out


@pytest.mark.parametrize("args,needle", [
    (["predict", "--arch", "layers=4"], "lacks hidden"),
    (["predict", "--arch", "layers=2,hidden=100,heads=3,ffn=512"], "heads must divide hidden"),
    (["predict"], "at least one --arch"),
    (["predict", "--arch", "layers=2,hidden=128,heads=2,ffn=512", "--seq-len", "0"], "--seq-len must be an integer >= 1"),
    (["predict", "--arch", "layers=2,hidden=128,heads=2,ffn=512", "--device", "onnxruntime"], "onnxruntime"),
])
def test_predict_errors_are_one_line_exit_2(cli_bundle, capsys, args, needle):
    code, _, err = run_cli([args[0], "--predictor", cli_bundle, *args[1:]], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_override_device(cli_bundle, capsys):
    code, out, _ = run_cli(["predict", "--predictor", cli_bundle, "--arch", "layers=2,hidden=128,heads=2,ffn=512",
                            "--device", "onnxruntime", "--override-device", "--json"], capsys)
    assert code == 0 and json.loads(out)["latency_ms"] > 0


def test_corrupt_bundle_is_one_line_exit_2(cli_bundle, tmp_path, capsys):
    bad = tmp_path / "bad.hwnas"
    bad.write_bytes(cli_bundle.read_bytes()[:200])
    for args in (["predictor", "show", bad], ["predict", "--predictor", bad, "--arch", "L2-H128-A2-I512"]):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and err.startswith("hwnas: error:") and len(err.strip().splitlines()) == 1


def test_eval_refuses_other_device(cli_bundle, profile_path, tmp_path, capsys):
    other = tmp_path / "ort.jsonl"
    other.write_text(profile_path.read_text().replace('"device":"cpu"', '"device":"onnxruntime"'))
    code, _, err = run_cli(["predictor", "eval", cli_bundle, other], capsys)
    assert code == 2 and "onnxruntime" in err
    code, out, _ = run_cli(["predictor", "eval", cli_bundle, other, "--override-device", "--json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 30


def test_fit_table_and_transfer(cli_bundle, profile_path, tmp_path, capsys):
    df = pd.read_json(profile_path, lines=True)
    csv = tmp_path / "m.csv"
    df.assign(macs=df.layers * df.hidden ** 2)[["macs", "layers", "latency_ms"]].to_csv(csv, index=False)
    out = tmp_path / "t.hwnas"
    code, stdout, _ = run_cli(["predictor", "fit", csv, "--target", "latency_ms", "--features", "macs,layers",
                               "--device", "npu", "--out", out, "--folds", "3"], capsys)
    assert code == 0 and out.is_file() and "npu" in stdout
    code, _, err = run_cli(["predictor", "fit", csv, "--features", "nope", "--out", tmp_path / "x.hwnas"], capsys)
    assert code == 2 and "no column(s) nope" in err
    code, _, err = run_cli(["predictor", "fit", csv, "--out", tmp_path / "y.hwnas", "--coverage", "2"], capsys)
    assert code == 2 and "--coverage" in err
    moved = tmp_path / "moved.hwnas"
    few = tmp_path / "few.jsonl"
    few.write_text("\n".join(profile_path.read_text().splitlines()[:8]).replace('"threads":1', '"threads":2') + "\n")
    code, stdout, _ = run_cli(["predictor", "fit", few, "--base", cli_bundle, "--out", moved], capsys)
    assert code == 0 and "leave-one-out" in stdout
    code, out, _ = run_cli(["predictor", "show", moved, "--json"], capsys)
    m = json.loads(out)
    assert m["kind"] == "physics+xgboost+transfer" and m["device"]["threads"] == 2 and len(m["corrections"]) == 1
    copy = tmp_path / "copy.hwnas"
    shutil.copy(cli_bundle, copy)
    code, _, err = run_cli(["predictor", "fit", few, "--base", tmp_path / "none.hwnas", "--out", tmp_path / "z.hwnas"], capsys)
    assert code == 2 and "does not exist" in err


def test_fit_refuses_a_profile_that_mixes_clocks(profile_path, tmp_path, capsys):
    lines = [json.loads(line) for line in Path(profile_path).read_text().splitlines() if line.strip()]
    for i, r in enumerate(lines):
        r["clock"] = "thread_cpu" if i % 2 else "wall"
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in lines))
    before = mixed.read_bytes()
    out = tmp_path / "p.hwnas"
    code, _, err = run_cli(["predictor", "fit", mixed, "--out", out], capsys)
    assert code == 2 and "mixes clocks (thread_cpu, wall)" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and mixed.read_bytes() == before
