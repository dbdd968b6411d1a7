"""Reading measurements (profiles, CSV, Parquet), fitting, transfer, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from hwnas.errors import InvalidData, PredictorMismatch
from hwnas.predictors.bundle import save_bundle
from hwnas.predictors import load_predictor
from hwnas.predictors.training import (
    Measurements,
    evaluate_predictor,
    fit_predictor,
    load_measurements,
    transfer_predictor,
)

FAST = {"n_estimators": 20, "max_depth": 2}


def test_profile_is_read_with_device_and_space(measurements):
    assert measurements.X.shape == (30, 6)
    assert measurements.device["name"] == "cpu" and measurements.device["threads"] == 1
    assert measurements.device["dtype"] == "fp32" and measurements.space == "tiny"
    assert np.all(measurements.y > 0)


def test_csv_and_parquet_tables(tmp_path, synthetic):
    df = pd.DataFrame({"macs": synthetic.X[:, 0] * synthetic.X[:, 1] ** 2, "depth": synthetic.X[:, 0],
                       "latency": synthetic.y, "note": "x"})
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    m = load_measurements(csv, target="latency", features=["macs", "depth"], device="npu")
    assert m.inputs == ("macs", "depth") and m.device["name"] == "npu" and m.is_table
    pred = fit_predictor(m, tune_hyperparameters=False, params=FAST, n_folds=3)
    assert pred.is_table and pred.manifest["input_kind"] == "table"
    with pytest.raises(PredictorMismatch, match="predict_table"):
        pred.predict(np.array([[2, 128, 2, 256]]))
    out = pred.predict_table(df)
    assert out.shape == (len(df),) and np.all(out > 0)
    np.testing.assert_allclose(out, pred.predict_table({"macs": df.macs.values, "depth": df.depth.values}))
    with pytest.raises(PredictorMismatch, match="lacks column"):
        pred.predict_table(df.drop(columns=["macs"]))
    pytest.importorskip("pyarrow")
    pq = tmp_path / "t.parquet"
    df.to_parquet(pq)
    m2 = load_measurements(pq, target="latency", features=["macs", "depth"])
    np.testing.assert_array_equal(m2.X, m.X)


def test_table_errors(tmp_path):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"a": [1.0, 2.0], "lat": [1.0, 2.0], "s": ["x", "y"]}).to_csv(csv, index=False)
    with pytest.raises(InvalidData, match="no column 'latency_ms'"):
        load_measurements(csv)
    with pytest.raises(InvalidData, match="lacks layers"):
        load_measurements(csv, target="lat")
    with pytest.raises(InvalidData, match="no column"):
        load_measurements(csv, target="lat", features=["b"])
    with pytest.raises(InvalidData, match="numeric"):
        load_measurements(csv, target="lat", features=["s"])
    with pytest.raises(InvalidData, match="does not exist"):
        load_measurements(tmp_path / "missing.csv")
    other = tmp_path / "t.xlsx"
    other.write_text("x")
    with pytest.raises(InvalidData, match="accepted"):
        load_measurements(other)
    neg = tmp_path / "neg.csv"
    pd.DataFrame({"a": [1.0, 2.0], "lat": [1.0, -2.0]}).to_csv(neg, index=False)
    with pytest.raises(InvalidData, match="positive"):
        load_measurements(neg, target="lat", features=["a"])
    gap = tmp_path / "gap.csv"
    gap.write_text("a,lat\n1,2\n,3\n")
    with pytest.raises(InvalidData, match="row 2"):
        load_measurements(gap, target="lat", features=["a"])


def test_mixed_devices_are_refused(tmp_path, profile_path):
    lines = profile_path.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["device"] = "onnxruntime"
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join(lines[:5] + [json.dumps(rec)]) + "\n")
    with pytest.raises(InvalidData, match="mixes devices"):
        load_measurements(mixed)


def test_too_few_measurements(measurements):
    with pytest.raises(InvalidData, match="at least 5"):
        fit_predictor(measurements.subset(slice(0, 3)))


def test_fit_with_cross_validated_hyperparameters(synthetic):
    pred = fit_predictor(synthetic, grid={"n_estimators": [10, 40], "max_depth": [2, 3]}, n_folds=3)
    cv = pred.manifest["metrics"]["cv"]
    assert cv["within_10"] > 0.9 and cv["kendall_tau"] > 0.9
    assert pred.manifest["metrics"]["cv_choice"]["params"]["n_estimators"] in (10, 40)
    m = evaluate_predictor(pred, synthetic)
    # the bound covers at least what it guarantees (about 1 - 2 * (1 - 0.95)) on the rows it was calibrated from
    assert m["mape"] < 0.05 and m["upper_coverage"] >= pred.guaranteed_coverage == pytest.approx(0.90)
    assert pred.manifest["uncertainty"]["guaranteed_coverage"] == pytest.approx(0.90)
    assert "CV+" in pred.manifest["uncertainty"]["method"] and "1 - 2 * (1 - coverage)" in pred.manifest["uncertainty"]["guarantee"]


def test_transfer_learns_a_new_device_from_few_samples(synthetic, tmp_path):
    """A "new device" 1.8x slower with attention relatively dearer: transfer from 12 samples
    must beat the base predictor and keep the ranking."""
    base = fit_predictor(synthetic, tune_hyperparameters=False, params=FAST, n_folds=3)
    x = synthetic.X
    y_new = synthetic.y * 1.8 * (x[:, 4] / 64.0) ** 0.3
    new = Measurements(x, y_new, device={"name": "onnxruntime", "threads": 1}, space=None, source="new")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    few, rest = new.subset(idx[:12]), new.subset(idx[12:])
    moved = transfer_predictor(base, few)
    assert moved.device == "onnxruntime" and moved.manifest["base"]["device"] == "synthetic"
    before, after = evaluate_predictor(base, rest), evaluate_predictor(moved, rest)
    assert after["mape"] < 0.5 * before["mape"]
    assert after["spearman_rho"] > 0.95
    path = save_bundle(moved, tmp_path / "moved.hwnas")
    again = load_predictor(path)
    np.testing.assert_array_equal(again.predict(x[:, :4].astype(int), seq_len=128),
                                  moved.predict(x[:, :4].astype(int), seq_len=128))
    with pytest.raises(InvalidData, match="at least 2"):
        transfer_predictor(base, few.subset(slice(0, 1)))
