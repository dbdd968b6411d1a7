"""One writer per output: an advisory ``fcntl.flock`` on a ``.lock`` file beside it.

Used by the profile store (``<profile>.jsonl.lock``) and by supernet training
(``<folder>.lock``). The lock file holds the holder's PID, host and start time,
so that a second writer is refused with one line naming the holder. The kernel
releases the lock when its process dies, so a lock left behind by a killed run
is taken over; the output itself is never touched by locking.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["writer_lock", "lock_holder", "describe_holder"]


def lock_holder(lock_path: str | Path) -> dict[str, Any]:
    """What a lock file says about its holder (``{}`` when empty or unreadable)."""
    try:
        data = json.loads(Path(lock_path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``PID 123 on host, since 2026-...`` for a lock holder."""
    return (f"PID {holder.get('pid', '?')}" + (f" on {holder['host']}" if holder.get("host") else "")
            + (f", since {holder['started']}" if holder.get("started") else ""))


@contextmanager
def writer_lock(lock_path: str | Path, *, target: str | Path, error: type[Exception],
                hint: str = "wait for it to finish, or write to another --out") -> Iterator[dict[str, Any]]:
    """Hold the one-writer lock ``lock_path`` of ``target`` for the duration of the block.

    Yields what the lock file said before it was taken: ``{}`` for a free lock, the
    old holder's ``{"pid", "host", "started"}`` when a lock left by a dead process
    was taken over.

    Raises:
        error: another live process holds the lock; the one-line message names
            ``target``, the holder's PID and host, and ``hint``.
    """
    lock_path = Path(lock_path)
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks, say so once and go on
        warnings.warn(f"advisory file locks are not available on this platform; do not run two writers on {target}",
                      stacklevel=3)
        yield {}
        return
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise error(f"cannot create the lock file {lock_path} for {target}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise error(f"{target} is being written by another process ({describe_holder(lock_holder(lock_path))}); "
                        f"{hint}") from None
        except OSError as exc:
            os.close(fd)
            warnings.warn(f"cannot lock {lock_path} ({exc.strerror}); do not run two writers on {target}", stacklevel=3)
            yield {}
            return
        # The previous holder may have removed the file between our open and our lock:
        # then we locked an orphan inode, and must lock the file now at that path instead.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        previous = lock_holder(lock_path)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        os.fsync(fd)
        yield previous
    finally:
        try:
            os.unlink(lock_path)  # removed while still held: no one can lock the old inode afterwards
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
