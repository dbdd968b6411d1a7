"""``bench/bench_cuda.py`` runs its whole protocol on the CPU (``--device cpu``), so the script a GPU session relies
on is checked on every machine: two interleaved passes and a ``torch.utils.benchmark`` reference per architecture."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_cuda.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_cuda", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_cuda_protocol_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "rows.json"
    code = _bench().main(["--device", "cpu", "--space", "tiny", "--n", "2", "--seq-len", "8", "--batch-sizes", "1",
                          "--dtypes", "fp32", "--max-time", "0.05", "--reference-s", "0.02", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fp32 eager b1" in printed and "retest within ±5%" in printed and "hwnas/Timer" in printed
    rows = json.loads(out.read_text())
    assert list(rows["groups"]) == ["fp32 eager b1"] and len(rows["archs"]) == 2
    for row in rows["groups"]["fp32 eager b1"]:
        assert row["pass1_ms"] > 0 and row["pass2_ms"] > 0 and row["timer_ms"] > 0
        assert row["arch"] in rows["archs"]
