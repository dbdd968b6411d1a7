"""Property-based fuzzing of every parser of a user's input (Hypothesis).

Each target (tests/adversarial/fuzz.py) must return or raise a one-line
``HwnasError`` on any input. Examples per target are few enough for CI; run
``bench/bench_fuzz.py --examples 2000`` for a deeper search.
"""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.adversarial.fuzz import TARGETS  # noqa: E402

_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("name", [n for n in TARGETS if n != "bundle manifests"])
def test_parser_refuses_bad_input_in_one_line(name):
    target, strategy = TARGETS[name]

    @_SETTINGS
    @given(strategy)
    def check(value):
        target(value)

    check()


def test_bundle_manifest_edits_are_refused_or_predict_sanely(workspace):
    from pathlib import Path

    target, strategy = TARGETS["bundle manifests"]

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy)
    def check(edits):
        target(Path(workspace["bundle"]), edits)

    check()
