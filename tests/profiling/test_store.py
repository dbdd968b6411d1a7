from __future__ import annotations

import json

import pytest

from hwnas.errors import ProfileStoreError
from hwnas.profiling.store import ProfileStore, read_profile, read_records, record_key


def _record(layers=1, latency=1.0, **extra):
    r = {"layers": layers, "hidden": 32, "heads": 2, "ffn": 64, "batch_size": 1, "seq_len": 16,
         "device": "cpu", "dtype": "fp32", "threads": 1, "latency_ms": latency}
    r.update(extra)
    return r


def test_append_and_read_back(tmp_path):
    store = ProfileStore(tmp_path / "sub" / "p.jsonl")
    assert store.append([_record(1), _record(2)]) == 2
    assert store.append([_record(3)]) == 1
    assert [r["layers"] for r in store.records()] == [1, 2, 3]
    assert len(store.keys()) == 3
    df = read_profile(store.path)
    assert list(df["layers"]) == [1, 2, 3]
    assert record_key({"layers": 1, "hidden": 32, "heads": 2, "ffn": 64}, 1, 16, "cpu", "fp32", 1) in store.keys()


def test_torn_last_line_is_skipped_then_repaired(tmp_path):
    path = tmp_path / "p.jsonl"
    store = ProfileStore(path)
    store.append([_record(1), _record(2)])
    with path.open("a") as fh:  # a kill in the middle of a write
        fh.write(json.dumps(_record(3))[:25])
    with pytest.warns(UserWarning, match="incomplete last line"):
        assert [r["layers"] for r in read_records(path)] == [1, 2]
    with pytest.warns(UserWarning, match="removed an incomplete last line"):
        store.append([_record(4)])
    assert [r["layers"] for r in read_records(path)] == [1, 2, 4]
    assert path.read_text().endswith("\n")


def test_corrupt_middle_line_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(_record(1)) + "\n{broken\n" + json.dumps(_record(2)) + "\n")
    with pytest.raises(ProfileStoreError, match=r"p\.jsonl, line 2: not a profile record"):
        list(read_records(path))


def test_record_without_required_fields(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"layers": 1}) + "\n")
    with pytest.raises(ProfileStoreError, match="line 1: record lacks hidden, heads, ffn"):
        list(read_records(path))


def test_unwritable_and_folder_paths(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ProfileStoreError, match="cannot create folder"):
        ProfileStore(a_file / "p.jsonl").check_writable()
    with pytest.raises(ProfileStoreError, match="is a folder"):
        ProfileStore(tmp_path).check_writable()
