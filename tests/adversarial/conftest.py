"""The adversarial workspace, built once per session (a tiny real predictor, real files)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    from tests.adversarial.workspace import build_workspace

    return build_workspace(tmp_path_factory.mktemp("adversarial") / "ws")
