"""The profile store: an append-only JSON Lines file, one record per measurement.

Crash safety: records are written whole, one line each, flushed and fsynced
after every chunk. A kill in the middle of a write can only leave a partial
*last* line; readers skip it (with a warning) and :class:`ProfileStore`
truncates it before appending again, so a resumed run never builds on a torn
record. Every complete line is kept forever: nothing is rewritten in place.

Read with pandas in one line: ``pandas.read_json(path, lines=True)``, or
:func:`read_profile`, which also tolerates a torn last line.

One writer per profile: :meth:`ProfileStore.lock` takes an advisory lock
(``fcntl.flock``) on ``<file>.lock`` and writes the holder's PID, host and start
time into it. A second writer is refused with one line naming the holder. The
kernel releases the lock when its process dies, so a lock left by a killed run
is taken over; nothing in the profile itself is touched by locking.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hwnas._lock import lock_holder, writer_lock
from hwnas.errors import InvalidArchitecture, ProfileStoreError
from hwnas.space import DIMENSIONS, Architecture

__all__ = ["ProfileStore", "record_key", "stored_key", "read_profile", "read_records", "check_is_profile",
           "SCHEMA_VERSION", "KNOWN_SCHEMAS", "lock_holder"]

SCHEMA_VERSION = 1
#: Record schema versions this hwnas reads.
KNOWN_SCHEMAS = (1,)
#: Fields every profile record has.
REQUIRED_FIELDS = (*DIMENSIONS, "batch_size", "seq_len", "device", "latency_ms")
#: How every record written by hwnas begins: the schema header a torn first line is recognised by.
RECORD_PREFIX = b'{"schema":'


def record_key(arch: Architecture | Mapping[str, Any], batch_size: int, seq_len: int, device: str,
               dtype: str, threads: int | None) -> str:
    """Identity of a measurement: what ``--resume`` uses to skip finished work."""
    if not isinstance(arch, Architecture):
        arch = Architecture.from_dict(arch)
    return f"{arch.key}|batch_size={batch_size}|seq_len={seq_len}|device={device}|dtype={dtype}|threads={threads}"


def stored_key(record: Mapping[str, Any]) -> str:
    """A stored record's identity, as ``--resume`` sees it."""
    return record_key({d: record[d] for d in DIMENSIONS}, record["batch_size"], record["seq_len"],
                      record["device"], record.get("dtype", "fp32"), record.get("threads"))


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield every complete record; a torn last line is skipped with a warning.

    Raises:
        ProfileStoreError: the file is missing, or a line other than the last is not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise ProfileStoreError(f"profile file {path} does not exist")
    with path.open("rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    torn_tail = lines[-1] != b""  # the file does not end with a newline: last write was cut
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            problem: str | None = str(exc)
        else:
            problem = None if isinstance(record, dict) else "not a JSON object"
        if problem is not None:
            if lineno == len(lines) and torn_tail:
                warnings.warn(f"{path}: ignoring an incomplete last line (an interrupted write)", stacklevel=2)
                return
            raise ProfileStoreError(f"{path}, line {lineno}: not a profile record ({problem})")
        missing = [k for k in REQUIRED_FIELDS if k not in record]
        if missing:
            raise ProfileStoreError(f"{path}, line {lineno}: record lacks {', '.join(missing)}")
        try:
            Architecture.from_dict({d: record[d] for d in DIMENSIONS})
        except InvalidArchitecture as exc:
            raise ProfileStoreError(f"{path}, line {lineno}: {exc}") from None
        for key in ("batch_size", "seq_len"):
            v = record[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 24:
                raise ProfileStoreError(f"{path}, line {lineno}: {key} must be a positive integer; got {str(v)[:40]}")
        if not isinstance(record["device"], str) or not record["device"]:
            raise ProfileStoreError(f"{path}, line {lineno}: device must be a device name; got {str(record['device'])[:40]}")
        for key, kinds in (("dtype", (str,)), ("threads", (int, type(None))), ("clock", (str,))):
            if key in record and (isinstance(record[key], bool) or not isinstance(record[key], kinds)):
                raise ProfileStoreError(f"{path}, line {lineno}: {key} has a wrong type; got {str(record[key])[:40]}")
        lat = record["latency_ms"]
        if isinstance(lat, bool) or not isinstance(lat, (int, float)) or (math.isfinite(lat) and lat <= 0):
            raise ProfileStoreError(f"{path}, line {lineno}: latency_ms must be a positive number of milliseconds; "
                                    f"got {lat!r}")
        schema = record.get("schema", SCHEMA_VERSION)  # hand-written rows may leave it out
        if schema not in KNOWN_SCHEMAS or isinstance(schema, bool):
            raise ProfileStoreError(f"{path}, line {lineno}: unknown profile schema version {schema!r}; "
                                    f"this hwnas reads {', '.join(map(str, KNOWN_SCHEMAS))} (upgrade hwnas?)")
        yield record


def check_is_profile(path: str | Path) -> None:
    """Refuse to write into a file that is not a profile written by hwnas.

    An empty or missing file passes. Otherwise the first line must be a complete
    profile record, or, when it is the only line and was cut by a crash, begin
    with the record header ``{"schema":``. Nothing is read past the first line.

    Raises:
        ProfileStoreError: the file holds something else (its content is left untouched).
    """
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    if not head.strip():
        return
    first, newline, _ = head.partition(b"\n")
    refuse = f"{path} is not a profile written by hwnas (its first line is not a profile record); " \
             "refusing to change it: give another --out"
    if not newline:  # one line and no newline: only a torn first record is ours
        if not first.startswith(RECORD_PREFIX):
            raise ProfileStoreError(refuse)
        return
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        raise ProfileStoreError(refuse) from None
    if not isinstance(record, dict) or any(k not in record for k in REQUIRED_FIELDS):
        raise ProfileStoreError(refuse)


def read_profile(path: str | Path):
    """All records as a ``pandas.DataFrame`` (one row per measurement)."""
    import pandas as pd

    from hwnas.validate import check_profile_quality

    # exact duplicates merged (they would flatter cross-validation), gross outliers against twins flagged
    return pd.DataFrame.from_records(check_profile_quality(list(read_records(path)), where=str(path)).records)


class ProfileStore:
    """Append-only access to one profile file.

    Args:
        path: the ``.jsonl`` file. Its folder is created if needed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        check_is_profile(self.path)
        return list(read_records(self.path))

    def keys(self) -> set[str]:
        return {stored_key(r) for r in self.records()}

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def lock(self) -> Iterator[dict[str, Any]]:
        """Hold the one-writer lock of this profile for the duration of the block.

        Yields what was found in the lock file before taking it: ``{}`` for a
        free lock, the old holder's ``{"pid", "host", "started"}`` when a lock
        left by a dead process was taken over (see :func:`hwnas._lock.writer_lock`).

        Raises:
            ProfileStoreError: another live process holds the lock (the message
                names its PID and host).
        """
        self.check_writable()
        with writer_lock(self.lock_path, target=self.path, error=ProfileStoreError) as previous:
            yield previous

    def check_writable(self) -> None:
        """Raise a one-line error now rather than after an hour of profiling."""
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProfileStoreError(f"cannot create folder {parent} for {self.path}: {exc.strerror}") from None
        if self.path.is_dir():
            raise ProfileStoreError(f"output path {self.path} is a folder; give a .jsonl file path")
        if not os.access(parent, os.W_OK) or (self.path.exists() and not os.access(self.path, os.W_OK)):
            raise ProfileStoreError(f"output path {self.path} is not writable")

    def _repair_tail(self) -> None:
        """Drop a torn last line left by a kill during a write."""
        if not self.path.exists():
            return
        with self.path.open("rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            # Walk back to the last newline; everything after it is a partial record.
            block = 4096
            pos = size
            cut = 0
            while pos > 0:
                step = min(block, pos)
                pos -= step
                fh.seek(pos)
                chunk = fh.read(step)
                idx = chunk.rfind(b"\n")
                if idx >= 0:
                    cut = pos + idx + 1
                    break
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
        warnings.warn(f"{self.path}: removed an incomplete last line left by an interrupted write", stacklevel=3)

    def append(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append records atomically per line, then flush and fsync. Returns how many.

        The store is append-only with its own crash-safety (whole lines appended and fsynced; a torn
        last line is cut by :meth:`_repair_tail` before the next append), so it does not go through
        the replace-the-file writer of :mod:`hwnas._files`, which would rewrite the whole file.
        """
        self.check_writable()
        check_is_profile(self.path)  # never repair or append to a file hwnas did not write
        self._repair_tail()
        lines = [json.dumps(dict(r), separators=(",", ":"), allow_nan=True) + "\n" for r in records]
        if not lines:
            return 0
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        return len(lines)
