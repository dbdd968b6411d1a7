"""Adaptive profiling with real measurements (tiny space, quick timing, small budget)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas.errors import InvalidConfig, ProfileStoreError
from hwnas.profiling.adaptive import committee_disagreement, profile_until_accuracy, select_next
from hwnas.profiling.runner import ProfileConfig
from hwnas.profiling.store import read_records


def test_committee_disagrees_more_far_from_the_data(synthetic):
    x, y = synthetic.X, synthetic.y
    near = x[:5]
    far = np.array([[12, 768, 12, 3072, 512, 8]], dtype=float)
    oof, spread = committee_disagreement(x, y, np.vstack([near, far]), folds=4)
    assert oof.shape == y.shape and np.all(oof > 0)
    assert spread.shape == (6,) and spread[-1] >= spread[:5].max()


@pytest.mark.slow
def test_rounds_measure_append_and_resume(tmp_path, quick_timing):
    out = tmp_path / "adaptive.jsonl"
    config = ProfileConfig(device="cpu", space="tiny", samples=8, timing=quick_timing, interleave=4)
    rounds = []
    summary = profile_until_accuracy(config, str(out), target=1.0, round_size=2, initial=5, on_round=rounds.append)
    records = list(read_records(out))
    assert summary.measured == len(records) == 8 and summary.stopped == "budget"
    assert [r.measured for r in summary.rounds] == [5, 7, 8]
    assert len(rounds) == 3 and len(rounds[0].added) == 2
    # the last round's figures are the committee's out-of-fold accuracy on exactly the rows in the file
    from hwnas.predictors.metrics import evaluate

    x = np.array([[r[d] for d in ("layers", "hidden", "heads", "ffn", "seq_len", "batch_size")] for r in records], float)
    y = np.array([r["latency_ms"] for r in records])
    expected = evaluate(y, committee_disagreement(x, y, np.empty((0, 6)), seed=config.seed)[0])
    last = summary.rounds[-1]
    assert (last.cv_within_10, last.cv_within_5, last.cv_mape) == \
        pytest.approx((expected["within_10"], expected["within_5"], expected["mape"]))
    assert all(r.cv_within_5 <= r.cv_within_10 for r in summary.rounds)
    keys = {(r["layers"], r["hidden"], r["heads"], r["ffn"]) for r in records}
    assert len(keys) == 8  # never the same architecture twice
    assert {r["plan"] for r in records} == {"adaptive"} and max(r["round"] for r in records) == 2
    with pytest.raises(ProfileStoreError, match="already exists"):
        profile_until_accuracy(config, str(out))
    # resume with a larger budget: the file grows, nothing is lost or repeated
    more = ProfileConfig(device="cpu", space="tiny", samples=9, timing=quick_timing, interleave=4)
    again = profile_until_accuracy(more, str(out), target=1.0, round_size=2, resume=True)
    after = list(read_records(out))
    assert again.measured == len(after) == 9 and after[:8] == records
    assert len({json.dumps([r["layers"], r["hidden"], r["heads"], r["ffn"]]) for r in after}) == 9


def test_invalid_settings_are_refused(tmp_path):
    config = ProfileConfig(device="cpu", space="tiny", samples=10)
    with pytest.raises(InvalidConfig, match="until-accuracy"):
        profile_until_accuracy(config, str(tmp_path / "a.jsonl"), target=0)
    with pytest.raises(InvalidConfig, match="round-size"):
        profile_until_accuracy(config, str(tmp_path / "a.jsonl"), round_size=0)
    with pytest.raises(InvalidConfig, match="at least 5"):
        profile_until_accuracy(config, str(tmp_path / "a.jsonl"), initial=2)
    archs = tmp_path / "archs.txt"
    archs.write_text("layers=1,hidden=128,heads=2,ffn=256\n")
    with pytest.raises(InvalidConfig, match="--archs"):
        profile_until_accuracy(ProfileConfig(device="cpu", space="tiny", archs_file=str(archs)), str(tmp_path / "b.jsonl"))
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()


def test_select_next_prefers_disputed_and_spread_out():
    measured = np.array([[2, 192, 4, 512, 128, 1]], dtype=float)
    pool = np.array([[6, 384, 8, 1536, 128, 1], [6, 384, 8, 1408, 128, 1], [2, 224, 4, 512, 128, 1],
                     [4, 288, 4, 1024, 128, 1]], dtype=float)
    spread = np.array([0.9, 0.85, 0.1, 0.5])
    first = select_next(measured, pool, spread, 1)
    assert list(first) == [0]  # the most distant of the disputed shortlist
    two = select_next(measured, pool, spread, 2, shortlist=2)
    assert list(two) == [0, 3]  # not the near-duplicate 1 of the first pick
    assert len(set(select_next(measured, pool, spread, 4))) == 4
    assert select_next(measured, pool, spread, 0).size == 0
