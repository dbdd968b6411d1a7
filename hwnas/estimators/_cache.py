"""Per-architecture results of an expensive estimator, kept in a JSON file between processes.

One file holds one setting of one estimator: ``{"estimator": NAME, "signature": SIG, FIELD: {arch key: value}}``.
A file with another signature, or one that cannot be read, counts as empty (it only costs time); writes merge
with what another process may have added since, and are atomic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DiskResults"]


class DiskResults:
    """``read()`` and ``write(entries)`` of one estimator setting's results file.

    Args:
        cache: a file, ``None``/``True`` for ``~/.cache/hwnas/<name>/<signature>.json``, ``False`` for none.
        field: the top-level key holding the entries (``"scores"``, ``"runs"``).
        clean: turns one stored value into the value kept, or ``None`` to drop it.
    """

    def __init__(self, cache: str | Path | bool | None, *, name: str, signature: str, field: str,
                 clean: Callable[[Any], Any]) -> None:
        if cache is False:
            self.path: Path | None = None
        elif cache is None or cache is True:
            self.path = Path.home() / ".cache" / "hwnas" / name / f"{signature}.json"
        else:
            self.path = Path(cache)
        self.name, self.signature, self.field, self.clean = name, signature, field, clean

    def read(self) -> dict[str, Any]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {}  # an unreadable cache only costs time
        if not isinstance(data, dict) or data.get("signature") != self.signature:
            return {}
        entries = data.get(self.field, {})
        if not isinstance(entries, dict):
            return {}
        kept = {k: self.clean(v) for k, v in entries.items()}
        return {k: v for k, v in kept.items() if v is not None}

    def write(self, entries: dict[str, Any]) -> None:
        if self.path is None:
            return
        from hwnas._files import atomic_write_text

        merged = self.read() | entries  # another process may have added entries
        try:
            atomic_write_text(self.path, json.dumps({"estimator": self.name, "signature": self.signature,
                                                     self.field: merged}, indent=1))
        except OSError:
            pass  # a read-only cache folder: keep results in memory
