"""Drift-aware verification: a real profile with a reference, a predictor that keeps it, and both verdicts."""

from __future__ import annotations

import json

import pytest

from hwnas.devices.timing import TimingConfig
from hwnas.errors import PredictorMismatch
from hwnas.predictors import load_predictor
from hwnas.predictors.bundle import save_bundle
from hwnas.predictors.host import HostMismatchWarning, check_host, host_mismatch
from hwnas.profiling import Drift, ProfileConfig, profile, reference_architecture
from hwnas.search.verify import budget_verdicts, summarise, verdict_lines, verify
from hwnas.space import Architecture, get_space


@pytest.fixture(scope="module")
def referenced_predictor(tmp_path_factory):
    """Six architectures of space tiny profiled for real (quick timing, seq 16), and a predictor fitted on them."""
    from hwnas.predictors.training import fit_predictor, load_measurements

    folder = tmp_path_factory.mktemp("drift")
    out = folder / "p.jsonl"
    profile(ProfileConfig(device="cpu", space="tiny", samples=6, seq_lens=(16,), interleave=3,
                          timing=TimingConfig.quick()), out)
    fitted = fit_predictor(load_measurements(out), tune_hyperparameters=False,
                           params={"n_estimators": 10, "max_depth": 2}, n_folds=2)
    return save_bundle(fitted, folder / "p.hwnas")


def test_the_manifest_keeps_the_reference_and_the_clock(referenced_predictor):
    m = load_predictor(referenced_predictor).manifest
    ref = m["reference"]
    assert ref["arch"] == reference_architecture(get_space("tiny")).key
    assert (ref["seq_len"], ref["batch_size"], ref["clock"]) == (16, 1, "wall")
    assert ref["n_chunks"] >= 1 and ref["latency_ms"] > 0
    assert m["device"]["clock"] == "wall"


def test_verification_measures_the_reference_with_the_winner(referenced_predictor):
    pred = load_predictor(referenced_predictor)
    [r] = verify([Architecture(1, 128, 2, 256)], device="cpu", predictor=pred, budget_ms=1e9, seq_len=16,
                 timing=TimingConfig.quick())
    assert r.drift.reference_arch == pred.manifest["reference"]["arch"]
    assert r.drift.then_ms == pred.manifest["reference"]["latency_ms"] and r.drift.now_ms > 0
    # per-round ratio to the reference timed in the same rounds, times the reference at profiling time
    assert r.reference_ratio > 0 and r.normalised_ms == pytest.approx(r.reference_ratio * r.drift.then_ms)
    assert r.within_budget and r.within_budget_normalised and r.verdicts_agree
    d = r.to_dict()
    assert d["drift"]["speed_vs_profile"] == pytest.approx(r.drift.speed) and "than when it was profiled" in \
        d["drift"]["note"] or "same speed" in d["drift"]["note"]
    s = summarise([r])
    assert s["within_budget_normalised"] == 1.0 and s["verdicts_disagree"] == 0 and s["speed_vs_profile"] > 0


def test_a_bundle_without_reference_still_verifies_raw(real_predictor_path):
    [r] = verify([Architecture(1, 128, 2, 256)], device="cpu", predictor=load_predictor(real_predictor_path),
                 budget_ms=1e9, timing=TimingConfig.quick())
    assert r.drift.reference_arch is None and r.normalised_ms is None and r.within_budget_normalised is None
    assert r.verdicts_agree and "no reference recorded" in r.drift.describe()


def test_verdicts_disagree_when_the_machine_speed_decides():
    slower = Drift("layers=2,hidden=160,heads=2,ffn=512", now_ms=2.2, then_ms=2.0)  # 10% slower now
    assert slower.describe() == "this machine runs 10.0% slower than when it was profiled"
    v = budget_verdicts(5.38, 5.0, slower)
    assert v["within_budget"] is False and v["within_budget_normalised"] is True and v["verdicts_agree"] is False
    assert any("DISAGREE" in line and "quiet machine" in line for line in v["verdict"])
    same = budget_verdicts(4.0, 5.0, slower)
    assert same["verdicts_agree"] and not any("DISAGREE" in line for line in same["verdict"])
    faster = Drift("x", now_ms=1.8, then_ms=2.0)
    assert "10.0% faster" in faster.describe() and budget_verdicts(4.8, 5.0, faster)["within_budget_normalised"] is False
    lines = verdict_lines(4.0, 5.0, None)
    assert "within the 5 ms budget (raw)" in lines[0] and "no reference recorded" in lines[1]


def _foreign_host(path, tmp_path):
    pred = load_predictor(path)
    pred.manifest["device"]["fingerprint"] = {**pred.manifest["device"]["fingerprint"],
                                              "cpu_model": "Intel Xeon Test-9999", "logical_cores": 96}
    return save_bundle(pred, tmp_path / "foreign.hwnas")


def test_host_fingerprints_are_compared_for_host_bound_devices(real_predictor_path, tmp_path):
    same = load_predictor(real_predictor_path)
    assert host_mismatch(same.manifest) is None  # fitted on a profile of this machine's CPU model
    foreign = load_predictor(_foreign_host(real_predictor_path, tmp_path))
    message = host_mismatch(foreign.manifest)
    assert "Intel Xeon Test-9999, 96 cores" in message and same.manifest["device"]["fingerprint"]["cpu_model"] in message
    with pytest.warns(HostMismatchWarning, match="another host"):
        check_host(foreign.manifest)
    with pytest.raises(PredictorMismatch, match="--strict"):
        check_host(foreign.manifest, strict=True)
    with pytest.raises(PredictorMismatch, match="another host"):
        verify([Architecture(1, 128, 2, 256)], device="cpu", predictor=foreign, budget_ms=5.0, strict=True)
    gpu = json.loads(json.dumps(foreign.manifest))
    gpu["device"]["name"] = "cuda"  # not host-bound: the GPU is the device
    assert host_mismatch(gpu) is None


def test_predict_warns_about_another_host_and_strict_refuses(real_predictor_path, tmp_path, capsys):
    from hwnas.cli.main import main

    foreign = _foreign_host(real_predictor_path, tmp_path)
    args = ["predict", "--predictor", str(foreign), "--arch", "layers=2,hidden=128,heads=2,ffn=256", "--json"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    assert exc.value.code == 0 and json.loads(out.splitlines()[0])["latency_ms"] > 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "Intel Xeon Test-9999" in warnings[0]
    with pytest.raises(SystemExit) as exc:
        main(args + ["--strict"])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--strict" in err


def test_transfer_records_both_hosts(real_predictor_path, tmp_path):
    from hwnas.predictors.training import load_measurements, transfer_predictor
    from tests.search.conftest import PROFILE

    base = load_predictor(_foreign_host(real_predictor_path, tmp_path))
    meas = load_measurements(PROFILE)
    moved = transfer_predictor(base, meas)
    assert moved.manifest["base"]["fingerprint"]["cpu_model"] == "Intel Xeon Test-9999"
    assert moved.manifest["device"]["fingerprint"]["cpu_model"] == meas.device["fingerprint"]["cpu_model"]


def test_predictor_check_says_whether_it_holds(referenced_predictor, capsys):
    from hwnas.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["predictor", "check", str(referenced_predictor), "--device", "cpu", "--archs", "2", "--quick", "--json"])
    out, _ = capsys.readouterr()
    result = json.loads(out)
    assert (result["device"], result["seq_len"], result["batch_size"]) == ("cpu", 16, 1)
    assert result["drift"]["reference_arch"] == reference_architecture(get_space("tiny")).key
    assert len(result["architectures"]) == 3  # the reference and two of the space
    assert result["holds"] == all(r["within_band"] for r in result["architectures"])
    assert exc.value.code == (0 if result["holds"] else 1)


def test_predictor_check_refuses_another_device(referenced_predictor, capsys):
    from hwnas.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["predictor", "check", str(referenced_predictor), "--device", "onnxruntime"])
    _, err = capsys.readouterr()
    assert exc.value.code == 2 and "onnxruntime" in err and len(err.strip().splitlines()) == 1
