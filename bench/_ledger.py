"""Finished bench runs that outlive the machine: a committed ledger beside the work folder.

A bench keeps its finished runs in ``<work>/results.jsonl``, and ``--work`` lives under
``bench/out/``, which git ignores: on a fresh machine (a new session, CI, another
developer) every run of a multi-hour bench would start again. ``--ledger FILE`` keeps a
copy of each finished row in a file that is committed with the repository, and a bench
started on a fresh machine takes the ledger's rows back into its work folder instead of
running them again.

A row is only worth carrying when it would come out the same, and what could differ on
another machine is the teacher: a teacher fine-tuned again from the same settings is the
same only if training is bit-for-bit reproducible there. So every row records the
SHA-256 of its teacher's weights (``teacher_sha256``), and a row is carried into a work
folder only when the teacher given there (``--teacher-for``, or the bench's own teacher
record) has exactly those weights; the others are counted and said, and run again. Rows
without a teacher hash (written before this file existed) are never carried.

Writing: rows are appended one line at a time, flushed and ``fsync``-ed, by the one
runner of the work folder (the benches hold its lock or run one at a time); a row already
in the ledger (same key) is not written twice. Reading skips a torn last line (a bench
killed mid-write) with a warning instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

#: Row fields that describe one attempt on one machine, not the run's result: not copied into the ledger.
LOCAL_FIELDS = ("reused",)

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def weights_sha256(folder: str | Path | None) -> str | None:
    """SHA-256 of a model folder's ``model.safetensors`` (cached by path, size and mtime), or ``None``
    when the folder has no such file."""
    if folder is None:
        return None
    path = Path(folder) / "model.safetensors"
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file ([] when it does not exist); a line that does not parse is skipped with a warning
    (a torn last line of a killed writer)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            print(f"warning: {path}:{n}: not a JSON line, skipped", file=sys.stderr)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def append_jsonl(path: str | Path, row: Mapping[str, Any]) -> None:
    """Append one row as one line, flushed and fsync-ed (the parent folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(row)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def record(ledger: str | Path | None, row: Mapping[str, Any], key: Callable[[Mapping[str, Any]], Any]) -> bool:
    """Copy a finished row into the ledger (without its :data:`LOCAL_FIELDS`) unless a row with the same key is
    there already, or it has no ``teacher_sha256``; whether it was written."""
    if ledger is None or not row.get("teacher_sha256"):
        return False
    if any(key(r) == key(row) for r in read_jsonl(ledger)):
        return False
    append_jsonl(ledger, {k: v for k, v in row.items() if k not in LOCAL_FIELDS})
    return True


def carry_in(ledger: str | Path | None, results: str | Path, key: Callable[[Mapping[str, Any]], Any],
             teacher_sha: Mapping[str, str | None], *,
             on_carry: Callable[[Mapping[str, Any]], None] | None = None) -> dict[str, int]:
    """Take the ledger's rows that ``results`` lacks into it, when their teacher is this one; then copy the
    rows of ``results`` that the ledger lacks (and that know their teacher) into the ledger.

    Args:
        ledger: the committed JSONL file (``None``: nothing to do).
        results: the work folder's ``results.jsonl``.
        key: a row's identity (task, variant or budget, seed...).
        teacher_sha: per task, the SHA-256 of the teacher's weights on this machine (``None``: unknown, so
            nothing of that task is carried in).
        on_carry: called with each row carried in (e.g. to restore the experience record it embeds).

    Returns:
        counts: ``carried`` (rows taken in), ``other_teacher`` (rows left out: their teacher's weights differ or
        are unknown here), ``recorded`` (rows copied out to the ledger).
    """
    counts = {"carried": 0, "other_teacher": 0, "recorded": 0}
    if ledger is None:
        return counts
    local, kept = read_jsonl(results), read_jsonl(ledger)
    have = {key(r) for r in local}
    in_ledger = {key(r) for r in kept}
    for row in kept:
        if key(row) in have:
            continue
        sha = teacher_sha.get(row.get("task"))
        if not sha or row.get("teacher_sha256") != sha:
            counts["other_teacher"] += 1
            continue
        append_jsonl(results, {**row, "carried_from": str(ledger)})
        have.add(key(row))
        counts["carried"] += 1
        if on_carry is not None:
            on_carry(row)
    for row in local:
        if key(row) not in in_ledger and row.get("teacher_sha256"):
            append_jsonl(ledger, {k: v for k, v in row.items() if k not in LOCAL_FIELDS})
            in_ledger.add(key(row))
            counts["recorded"] += 1
    return counts


def say(counts: Mapping[str, int], ledger: str | Path | None) -> str | None:
    """One line about a :func:`carry_in`, or ``None`` when nothing happened."""
    if ledger is None or not any(counts.values()):
        return None
    parts = [f"{counts['carried']} finished run(s) taken from the ledger {ledger}"]
    if counts["other_teacher"]:
        parts.append(f"{counts['other_teacher']} left out (another teacher's weights, or this task's teacher is not "
                     "known yet: they run again)")
    if counts["recorded"]:
        parts.append(f"{counts['recorded']} copied into it")
    return "; ".join(parts)
