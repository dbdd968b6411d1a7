"""The file layer: reading the small YAML/JSON files and the labelled tables users write, atomic durable
writes, content hashes.

``atomic_write_bytes`` writes to a temporary file in the same folder, flushes
and fsyncs it, renames it over the target (atomic on POSIX) and fsyncs the
folder, so that after a crash the target holds either the old or the new
content, never a mix, and the rename itself survives a power cut.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["read_yaml_or_json", "iter_lines", "iter_table", "read_table", "atomic_write_bytes", "atomic_write_text",
           "sha256_file", "fsync_dir"]


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
    # Deliberately broad: besides YAMLError/JSONDecodeError, PyYAML raises ValueError (bad dates such as 2020-13-01),
    # RecursionError (deep nesting) and more on untrusted text; every one must become the one-line error.
    except Exception as exc:  # noqa: BLE001
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


# --------------------------------------------------------------- tables
def _table_format(path: Path, error: type[Exception]) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".tsv", ".tab"):
        return "tsv"
    if ext == ".csv":
        return "csv"
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise error(f"{path}: unknown file type {ext or '(none)'!r}; accepted: .tsv, .csv, .jsonl (optionally .gz)")


def iter_lines(path: Path, error: type[Exception]) -> Iterator[str]:
    """The UTF-8 lines of ``path``, endings kept, one at a time (gunzipped when it ends in ``.gz``; a byte-order
    mark is dropped), so that a large corpus is never held in memory. A bad file raises ``error`` in one line."""
    gz = path.suffix == ".gz"
    offset = 0
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
            for raw in fh:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise error(f"{path}: not UTF-8 text (byte {offset + exc.start})") from None
                yield line[1:] if offset == 0 and line.startswith("\ufeff") else line
                offset += len(raw)
    except (OSError, EOFError, zlib.error) as exc:
        what = f"not a valid gzip file ({exc})" if gz and not isinstance(exc, FileNotFoundError) else \
            f"cannot read ({getattr(exc, 'strerror', None) or exc})"
        raise error(f"{path}: {what}") from None


def iter_table(path: Path, error: type[Exception]) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]]]:
    """Column names and a stream of ``(row number, row)`` pairs of a TSV, CSV or JSON-lines file (optionally ``.gz``).

    The one reader of labelled tables. Rows are numbered as a text editor shows
    them (the header is row 1 of a TSV/CSV file); blank rows are skipped. The
    columns of a JSON-lines file grow as its rows are read. A bad file raises
    ``error`` with one line naming the file, the row and the problem.
    """
    fmt = _table_format(path, error)
    lines = iter_lines(path, error)
    csv.field_size_limit(1 << 30)  # long documents are one field
    if fmt == "jsonl":
        columns: list[str] = []
        return columns, _jsonl_rows(path, lines, columns, error)
    # TSV files of GLUE contain quotes that are not CSV quoting, so TSV is read without quote handling.
    reader = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",",
                        quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        raise error(f"{path}, row 1: {exc}") from None
    if not any(header):
        raise error(f"{path}: the file is empty")
    return header, _csv_rows(path, reader, header, error)


def _jsonl_rows(path: Path, lines: Iterator[str], columns: list[str], error: type[Exception]):
    seen = False
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        seen = True
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, numbers past int's digit limit, deep nesting
            raise error(f"{path}, row {lineno}: not valid JSON ({getattr(exc, 'msg', str(exc)[:80])})") from None
        if not isinstance(obj, dict):
            raise error(f"{path}, row {lineno}: expected a JSON object, got {type(obj).__name__}")
        columns.extend(k for k in obj if k not in columns)
        yield lineno, obj
    if not seen:
        raise error(f"{path}: the file is empty")


def _csv_rows(path: Path, reader: Any, header: list[str], error: type[Exception]):
    try:
        for lineno, values in enumerate(reader, 2):
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise error(f"{path}, row {lineno}: {len(values)} fields but the header has {len(header)} "
                            f"({', '.join(header)})")
            yield lineno, dict(zip(header, values, strict=True))
    except csv.Error as exc:
        raise error(f"{path}, row {reader.line_num}: {exc}") from None


def read_table(path: Path, error: type[Exception]) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """:func:`iter_table`, read whole."""
    columns, rows = iter_table(path, error)
    return columns, list(rows)
