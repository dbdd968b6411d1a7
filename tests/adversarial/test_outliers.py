"""Gross outliers against the physics model (issue 11, group 2), on real profiles.

The profiles are real CPU and ONNX Runtime measurements committed under
``bench/results/``; the outliers are real records whose latency is multiplied,
as a busy machine or a mis-recorded unit would.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from hwnas.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def _is_profile(path: Path) -> bool:
    """A profile's records carry a schema and a latency; other JSONL files
    under bench/results (training curves, for one) are not profiles."""
    with path.open() as fh:
        first = fh.readline()
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "schema" in record and "latency_ms" in record


REAL = sorted(p for p in (ROOT / "bench" / "results").glob("*.jsonl") if _is_profile(p))
HOLDOUT = ROOT / "bench" / "results" / "cpu-small-holdout.jsonl"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _arrays(records):
    from hwnas.predictors.features import INPUTS

    return (np.array([[r[k] for k in INPUTS] for r in records], dtype=np.float64),
            np.array([r["latency_ms"] for r in records], dtype=np.float64))


def test_real_profiles_hold_no_physics_outliers():
    from hwnas.validate import physics_outliers

    assert len(REAL) >= 5
    for path in REAL:
        mask, pred = physics_outliers(*_arrays(_records(path)))
        assert pred is not None and not mask.any(), f"{path.name}: {int(mask.sum())} flagged"


@pytest.mark.parametrize("factor", [90.0, 1 / 90, 6.0, 1 / 6])
def test_a_gross_outlier_slow_or_fast_is_flagged_and_nothing_else(factor):
    from hwnas.validate import physics_outliers

    records = _records(HOLDOUT)
    X, y = _arrays(records)
    for i in (3, 41, 77):
        bad = y.copy()
        bad[i] *= factor
        mask, _ = physics_outliers(X, bad)
        assert np.flatnonzero(mask).tolist() == [i]


def test_within_the_rule_nothing_is_flagged_and_small_profiles_are_not_judged():
    from hwnas.validate import PHYSICS_MIN_RECORDS, physics_outliers

    X, y = _arrays(_records(HOLDOUT))
    bad = y.copy()
    bad[[3, 41]] *= [3.0, 1 / 3]  # slow or fast, but less than 5x
    assert not physics_outliers(X, bad)[0].any()
    bad[5] *= 90
    mask, pred = physics_outliers(X[: PHYSICS_MIN_RECORDS - 1], bad[: PHYSICS_MIN_RECORDS - 1])
    assert pred is None and not mask.any()


def test_flagged_on_load_with_a_count(tmp_path):
    from hwnas.profiling.store import read_profile
    from hwnas.validate import DataQualityWarning

    records = _records(HOLDOUT)
    records[3] = {**records[3], "latency_ms": records[3]["latency_ms"] * 90}
    records[41] = {**records[41], "latency_ms": records[41]["latency_ms"] / 8}
    path = _write(tmp_path / "p.jsonl", records)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = read_profile(path)
    said = [str(w.message) for w in caught if issubclass(w.category, DataQualityWarning)]
    assert len(df) == len(records)  # flagged on load, not dropped
    assert len(said) == 1 and "2 of 100 record(s) lie more than 5x from the physical cost model" in said[0]
    assert "leaves them out" in said[0]


def _fit(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predictor", "fit", *map(str, args), "--no-plot", "--json", "--quiet", "--folds", "2"])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_predictor_fit_leaves_gross_outliers_out_by_its_rule(tmp_path, capsys):
    records = _records(HOLDOUT)
    records[3] = {**records[3], "latency_ms": records[3]["latency_ms"] * 90}
    records[41] = {**records[41], "latency_ms": records[41]["latency_ms"] / 8}
    path = _write(tmp_path / "p.jsonl", records)
    code, out, err = _fit([path, "--out", tmp_path / "a.hwnas"], capsys)
    result = json.loads(out)
    assert code == 0, err
    assert result["outliers_left_out"] == 2 and result["measurements"] == 98
    assert "warning: left out 2 of 100 measurement(s) more than 5x" in err
    code, out, err = _fit([path, "--keep-outliers", "--out", tmp_path / "b.hwnas"], capsys)
    result = json.loads(out)
    assert code == 0 and result["outliers_left_out"] == 0 and result["measurements"] == 100, err
    # more than a tenth of the records off the model: the model is doubted, not the data; all are kept
    many = _records(HOLDOUT)
    for i in range(0, 100, 8):
        many[i] = {**many[i], "latency_ms": many[i]["latency_ms"] * 20}
    code, out, err = _fit([_write(tmp_path / "m.jsonl", many), "--out", tmp_path / "c.hwnas"], capsys)
    assert code == 0 and json.loads(out)["outliers_left_out"] == 0, err
    assert "more than 10% of the records" in err and "they are kept" in err


def test_profile_show_counts_them(tmp_path, capsys):
    records = _records(HOLDOUT)
    records[3] = {**records[3], "latency_ms": records[3]["latency_ms"] * 90}
    path = _write(tmp_path / "p.jsonl", records + records[:2])
    with pytest.raises(SystemExit) as exc:
        main(["profile", "show", str(path), "--json"])
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert exc.value.code == 0 and shown["physics_outliers"] == 1 and shown["duplicates"] == 2, err
    assert sum(line.startswith("warning:") for line in err.splitlines()) == 2  # one line per finding
