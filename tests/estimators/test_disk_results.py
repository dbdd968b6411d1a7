"""The results file the expensive estimators share between processes (real files)."""

from __future__ import annotations

import json

from hwnas.estimators._cache import DiskResults


def _cache(path, signature="s1"):
    return DiskResults(path, name="x", signature=signature, field="scores",
                       clean=lambda v: float(v) if isinstance(v, (int, float)) else None)


def test_writes_merge_with_what_another_process_added(tmp_path):
    path = tmp_path / "c.json"
    a, b = _cache(path), _cache(path)
    a.write({"k1": 1.0})
    b.write({"k2": 2.0})  # b never saw k1: it is kept all the same
    assert _cache(path).read() == {"k1": 1.0, "k2": 2.0}
    assert json.loads(path.read_text())["estimator"] == "x"


def test_another_signature_a_torn_file_or_bad_entries_count_as_empty(tmp_path):
    path = tmp_path / "c.json"
    _cache(path).write({"k1": 1.0})
    assert _cache(path, signature="s2").read() == {}
    path.write_text('{"signature": "s1", "scores": {"k1": 1.0', encoding="utf-8")
    assert _cache(path).read() == {}
    path.write_text(json.dumps({"signature": "s1", "scores": {"k1": "nan?", "k2": 3}}), encoding="utf-8")
    assert _cache(path).read() == {"k2": 3.0}


def test_false_keeps_nothing_on_disk_and_none_uses_the_home_cache(tmp_path, monkeypatch):
    off = _cache(False)
    off.write({"k": 1.0})
    assert off.path is None and off.read() == {}
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _cache(None).path == tmp_path / ".cache" / "hwnas" / "x" / "s1.json"
