from __future__ import annotations

import json

import pytest

from tests.profiling.mini import MINI_SPACE


@pytest.fixture
def space_file(tmp_path):
    """``MINI_SPACE`` written to a JSON file, as ``--space`` takes it."""
    path = tmp_path / "mini.json"
    path.write_text(json.dumps(MINI_SPACE))
    return str(path)
