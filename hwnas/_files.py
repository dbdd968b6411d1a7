"""Reading the small YAML/JSON files users write (spaces, loss weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_yaml_or_json"]


def read_yaml_or_json(path: Path, error: type[Exception], what: str) -> Any:
    """Parse ``path`` as YAML (``.yaml``/``.yml``) or JSON (anything else).

    Raises ``error`` with one line naming ``what``, the file and the parser's first
    line of complaint when the file is missing or does not parse.
    """
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    text = path.read_text(encoding="utf-8")
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        if is_yaml:
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{what} {path} is not valid {'YAML' if is_yaml else 'JSON'}: {first}") from None
