"""The command line is a thin shell over the public API: it imports no private names from the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = sorted((Path(__file__).resolve().parents[1] / "hwnas" / "cli").glob("*.py"))


def _library_imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from hwnas.X import name`` outside ``hwnas.cli`` in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hwnas" \
                and not node.module.startswith("hwnas.cli"):
            out.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            out.extend((alias.name, "") for alias in node.names if alias.name.startswith("hwnas.")
                       and not alias.name.startswith("hwnas.cli"))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))  # __version__ is public


@pytest.mark.parametrize("path", CLI, ids=lambda p: p.name)
def test_cli_module_imports_only_public_library_names(path):
    private = [f"{module}:{name}" for module, name in _library_imports(path)
               if _private(name) or any(_private(part) for part in module.split("."))]
    assert private == [], f"{path.name} imports private library names"


def test_the_check_sees_a_private_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from hwnas.search.runner import _row, search\n    from hwnas._files import sha256_file\n")
    assert _library_imports(bad) == [("hwnas.search.runner", "_row"), ("hwnas.search.runner", "search"),
                                     ("hwnas._files", "sha256_file")]


def test_search_command_calls_the_library_search():
    """``hwnas search`` builds no SearchProblem of its own: it calls ``hwnas.search.search``."""
    imports = _library_imports(Path(__file__).resolve().parents[1] / "hwnas" / "cli" / "search.py")
    assert ("hwnas.search", "search") in imports
    assert not any(name in ("SearchProblem", "run_search") for _, name in imports)
