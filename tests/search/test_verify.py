"""Verification of searched architectures: real measurements on the CPU with a real predictor."""

from __future__ import annotations

import pytest

from hwnas.errors import InvalidConfig, PredictorMismatch
from hwnas.predictors import load_predictor
from hwnas.search.verify import predictor_device_settings, summarise, verify
from hwnas.space import Architecture


def test_measures_with_the_predictors_settings(real_predictor_path, quick_timing):
    predictor = load_predictor(real_predictor_path)
    assert predictor_device_settings(predictor) == {"threads": 1, "dtype": "fp32", "options": {}}
    a = Architecture(1, 128, 2, 256)
    b = Architecture(2, 128, 4, 256)
    records = verify([a, b, a], device="cpu", predictor=predictor, budget_ms=1000.0, roles=["winner", "front", "front"],
                     timing=quick_timing)
    assert [r.arch for r in records] == [a, b]  # a duplicate is measured once
    assert records[0].role == "winner,front" and records[1].role == "front"
    for r in records:
        assert r.measured_ms > 0 and r.upper_ms >= r.predicted_ms > 0
        assert r.within_budget  # a second is far above any tiny model's latency
        assert r.to_dict()["arch"] == r.arch.as_dict()
    s = summarise(records)
    assert s["n"] == 2 and s["within_budget"] == 1.0


def test_a_tight_budget_is_reported_as_broken(real_predictor_path, quick_timing):
    predictor = load_predictor(real_predictor_path)
    [r] = verify([Architecture(1, 128, 2, 256)], device="cpu", predictor=predictor, budget_ms=1e-4, timing=quick_timing)
    assert not r.within_budget and summarise([r])["within_budget"] == 0.0


def test_refuses_another_device_before_measuring(real_predictor_path):
    predictor = load_predictor(real_predictor_path)
    with pytest.raises(PredictorMismatch, match="onnxruntime"):
        verify([Architecture(1, 128, 2, 256)], device="onnxruntime", predictor=predictor, budget_ms=5.0)


def test_refuses_nothing_to_verify(real_predictor_path):
    with pytest.raises(InvalidConfig, match="nothing to verify"):
        verify([], device="cpu", predictor=load_predictor(real_predictor_path), budget_ms=5.0)
