"""Every bad input of the corpus: exit code 2, one error line, no internal error, nothing of the user's touched.

The corpus is data (:mod:`tests.adversarial.cases`); each case runs in this
process through ``hwnas.cli.main.main`` with click's ``CliRunner`` capturing
the output, on tiny files, so the whole corpus runs in about a minute.
"""

from __future__ import annotations

import os

import pytest

from tests.adversarial.cases import all_cases
from tests.adversarial.runner import run_case

CASES = all_cases()


def test_the_corpus_is_large_and_covers_every_command():
    from hwnas.cli.main import COMMANDS

    assert len(CASES) >= 300
    first_words = {c.argv[0] for c in CASES}
    assert set(COMMANDS) - {"devices"} <= first_words  # `devices` takes no input to get wrong


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly(case, workspace, tmp_path):
    if case.needs_non_root and os.geteuid() == 0:
        pytest.skip("permissions do not bind root")
    outcome = run_case(case, workspace, tmp_path / "case")
    assert outcome.ok, f"{' '.join(case.argv)}\n  problems: {outcome.problems}\n  stderr: {outcome.stderr[-600:]}"
