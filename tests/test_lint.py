"""The configured ruff rule set ([tool.ruff] in pyproject.toml) reports nothing on hwnas, bench and tests.

The rules are correctness rules (pyflakes, bugbear, blind excepts, leaked files, NaN
self-comparisons, ...); a finding here is fixed in the code, or, where the construct is
deliberate, marked ``# noqa: CODE (deliberate: why)`` on its line.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_reports_nothing():
    pytest.importorskip("ruff", reason="ruff is not installed (it is in the dev extra: pip install -e '.[dev]')")
    # --no-cache: a test must not write .ruff_cache into the source tree.
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "hwnas", "bench", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, f"ruff check failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
