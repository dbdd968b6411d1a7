"""Every name a package lists in ``__all__`` is a string and resolves (the lazy ones import on first use).

``__all__`` of the lazy packages is built from their ``_LAZY`` tables, which static tools cannot
check; this test does, so ``from hwnas import *`` cannot break on a stale entry.
"""

from __future__ import annotations

from importlib import import_module

import pytest

PACKAGES = ["hwnas", "hwnas.predictors", "hwnas.search", "hwnas.supernet", "hwnas.distill"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_lists_resolvable_strings(name):
    module = import_module(name)
    names = module.__all__
    assert isinstance(names, list) and all(isinstance(n, str) for n in names), names
    assert len(names) == len(set(names)), "duplicates in __all__"
    unresolved = [n for n in names if not hasattr(module, n)]
    assert unresolved == []
    namespace: dict = {}
    exec(f"from {name} import *", namespace)  # name: a constant from PACKAGES
    assert set(names) <= set(namespace)
