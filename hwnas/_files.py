"""The file layer: reading the small YAML/JSON files users write, atomic durable writes, content hashes.

``atomic_write_bytes`` writes to a temporary file in the same folder, flushes
and fsyncs it, renames it over the target (atomic on POSIX) and fsyncs the
folder, so that after a crash the target holds either the old or the new
content, never a mix, and the rename itself survives a power cut.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["read_yaml_or_json", "atomic_write_bytes", "atomic_write_text", "sha256_file", "fsync_dir"]


def read_yaml_or_json(path: Path, error: type[Exception], what: str) -> Any:
    """Parse ``path`` as YAML (``.yaml``/``.yml``) or JSON (anything else).

    Raises ``error`` with one line naming ``what``, the file and the parser's first
    line of complaint when the file is missing or does not parse.
    """
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text (a binary file?)") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror}") from None
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    try:
        if is_yaml:
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{what} {path} is not valid {'YAML' if is_yaml else 'JSON'}: {first}") from None


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so that a rename inside it survives a power cut (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically and durably; creates missing parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` for text."""
    return atomic_write_bytes(path, text.encode(encoding))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
