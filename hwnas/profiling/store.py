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
import os
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwnas.errors import ProfileStoreError
from hwnas.space import DIMENSIONS, Architecture

__all__ = ["ProfileStore", "record_key", "read_profile", "read_records", "SCHEMA_VERSION", "lock_holder"]

SCHEMA_VERSION = 1


def record_key(arch: Architecture | Mapping[str, Any], batch_size: int, seq_len: int, device: str,
               dtype: str, threads: int | None) -> str:
    """Identity of a measurement: what ``--resume`` uses to skip finished work."""
    if not isinstance(arch, Architecture):
        arch = Architecture.from_dict(arch)
    return f"{arch.key}|batch_size={batch_size}|seq_len={seq_len}|device={device}|dtype={dtype}|threads={threads}"


def _key_of(record: Mapping[str, Any]) -> str:
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
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            if lineno == len(lines) and torn_tail:
                warnings.warn(f"{path}: ignoring an incomplete last line (an interrupted write)", stacklevel=2)
                return
            raise ProfileStoreError(f"{path}, line {lineno}: not a profile record ({exc})") from None
        missing = [k for k in (*DIMENSIONS, "batch_size", "seq_len", "device", "latency_ms") if k not in record]
        if missing:
            raise ProfileStoreError(f"{path}, line {lineno}: record lacks {', '.join(missing)}")
        yield record


def read_profile(path: str | Path):
    """All records as a ``pandas.DataFrame`` (one row per measurement)."""
    import pandas as pd

    return pd.DataFrame.from_records(list(read_records(path)))


def lock_holder(lock_path: str | Path) -> dict[str, Any]:
    """What a lock file says about its holder (``{}`` when empty or unreadable)."""
    try:
        data = json.loads(Path(lock_path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
        return list(read_records(self.path)) if self.path.exists() else []

    def keys(self) -> set[str]:
        return {_key_of(r) for r in self.records()}

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def lock(self) -> Iterator[dict[str, Any]]:
        """Hold the one-writer lock of this profile for the duration of the block.

        Yields what was found in the lock file before taking it: ``{}`` for a
        free lock, the old holder's ``{"pid", "host", "started"}`` when a lock
        left by a dead process was taken over.

        Raises:
            ProfileStoreError: another live process holds the lock (the message
                names its PID and host).
        """
        try:
            import fcntl
        except ImportError:  # not POSIX: no advisory locks, say so once and go on
            warnings.warn("advisory file locks are not available on this platform; do not run two writers "
                          f"on {self.path}", stacklevel=3)
            yield {}
            return
        self.check_writable()
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                h = lock_holder(self.lock_path)
                who = f"PID {h.get('pid', '?')}" + (f" on {h['host']}" if h.get("host") else "") + \
                      (f", since {h['started']}" if h.get("started") else "")
                raise ProfileStoreError(f"{self.path} is being written by another process ({who}); wait for it to "
                                        "finish, or write to another --out") from None
            except OSError as exc:
                os.close(fd)
                warnings.warn(f"cannot lock {self.lock_path} ({exc.strerror}); do not run two writers on {self.path}",
                              stacklevel=3)
                yield {}
                return
            # The previous holder may have removed the file between our open and our lock:
            # then we locked an orphan inode, and must lock the file now at that path instead.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            previous = lock_holder(self.lock_path)
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            os.fsync(fd)
            yield previous
        finally:
            try:
                os.unlink(self.lock_path)  # removed while still held: no one can lock the old inode afterwards
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

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
        self._repair_tail()
        lines = [json.dumps(dict(r), separators=(",", ":"), allow_nan=True) + "\n" for r in records]
        if not lines:
            return 0
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        return len(lines)
