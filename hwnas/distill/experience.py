"""The experience table: one JSON line per finished ``hwnas distill`` run, for the AutoDistiller.

Format (schema version 2), one object per line, UTF-8::

    {"schema": 2,                       # version of this format; readers refuse a newer one
     "written": "2026-11-29T18:00:00Z", # when the run finished (UTC)
     "hwnas": "0.1.0",                  # the version that wrote it
     "task": {"id": "3f1c...", "source": "train.tsv", "name": null},   # id: a hash of the data, name: a label
     "recipe": {"name": "default", "settings": {...}},  # the settings actually used (recipe fields)
     "features": {"log10_examples": 3.3, "num_labels": 2, ...},       # hwnas.distill.auto.FEATURES
     "arch": {"layers": 2, "hidden": 128, "heads": 2, "ffn": 512},
     "result": {"metric": "accuracy", "student": 0.81, "teacher": 0.90, "kept": 0.9, "steps": 100}}

``kept`` is the student's score divided by the teacher's (the AutoDistiller's target).
``recipe.settings.losses`` holds ``weight_schedule`` only for runs with loss-weight
schedules; a record without it means constant weights, as in every record written
before schedules existed, so schedules did not need a new schema number.
Readers ignore unknown keys, so later versions may add fields without a new schema
number; a change of meaning bumps ``schema``.

Schema 2 (this one): ``recipe.settings.losses`` always states ``hidden_projection``,
how the hidden loss's width projection started (``aligned`` or ``random``). In a loss
config a missing key means ``aligned`` since that became the default, but every run
recorded under schema 1 that trained the hidden loss (weight > 0) started ``random``,
without saying so. Readers accept schema 1 and 2 and read such a schema-1 record as
``random`` (the key is filled in on reading; the record's ``schema`` stays as written),
so the AutoDistiller tells those runs from aligned ones (``hidden_aligned`` in
:data:`hwnas.distill.auto.RECIPE_FEATURES`). Runs recorded with the aligned start by a
build between that fix and schema 2 also say schema 1 without the key, and read as
``random`` too: no field tells them apart.

Where it lives: ``--experience PATH``, else ``$HWNAS_HOME/experience.jsonl``, else
``$XDG_CACHE_HOME/hwnas/experience.jsonl``, else ``~/.cache/hwnas/experience.jsonl``.
The package also ships the benchmark's runs as a read-only seed table
(:data:`SEED_TABLE`), read together with the user's table.

Appending is safe with several processes: each record is one ``write`` of one line to
a file opened with ``O_APPEND``, under an exclusive ``flock`` of that file, so lines
never interleave. A corrupt line, or one from a newer schema, is one
:class:`~hwnas.errors.InvalidData` line naming the file and line.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import InvalidData

__all__ = ["SCHEMA_VERSION", "SCHEMA1_PROJECTION", "SEED_TABLE", "default_table", "read_table", "append_record",
           "make_record", "validate_record"]

SCHEMA_VERSION = 2
#: How the hidden loss's projection started in a schema-1 run with the hidden loss (the default before schema 2).
SCHEMA1_PROJECTION = "random"
_PROJECTIONS = ("aligned", "random")
SEED_TABLE = Path(__file__).resolve().parents[1] / "data" / "experience" / "seed.jsonl"
_REQUIRED = {"recipe": Mapping, "features": Mapping, "arch": Mapping, "result": Mapping, "task": Mapping}


def default_table() -> Path:
    """Where runs are recorded when no ``--experience`` is given (see the module docstring)."""
    home = os.environ.get("HWNAS_HOME")
    if home:
        return Path(home).expanduser() / "experience.jsonl"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "hwnas" / "experience.jsonl"


def validate_record(rec: Any, where: str) -> dict[str, Any]:
    """``rec`` when it is a record this version can read; else one :class:`InvalidData` line naming ``where``."""
    if not isinstance(rec, dict):
        raise InvalidData(f"{where}: not a JSON object (a corrupt experience table; remove or fix that line)")
    schema = rec.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise InvalidData(f"{where}: no valid 'schema' version (a corrupt experience table; remove or fix that line)")
    if schema > SCHEMA_VERSION:
        raise InvalidData(f"{where}: written by a newer hwnas (experience schema {schema}; this version reads up to "
                          f"{SCHEMA_VERSION}); upgrade hwnas or give another --experience file")
    for key, kind in _REQUIRED.items():
        if not isinstance(rec.get(key), kind):
            raise InvalidData(f"{where}: missing or malformed {key!r} (a corrupt experience table; remove or fix that line)")
    kept = rec["result"].get("kept")
    if kept is not None and (isinstance(kept, bool) or not isinstance(kept, (int, float)) or not math.isfinite(kept)):
        raise InvalidData(f"{where}: result.kept must be a finite number; got {kept!r}")
    losses = _losses(rec)
    if losses is not None:
        start = losses.get("hidden_projection")
        if start is None and schema == 1 and _hidden_weight(losses) > 0:
            losses["hidden_projection"] = SCHEMA1_PROJECTION  # what trained every schema-1 run with the hidden loss
        elif start is not None and start not in _PROJECTIONS:
            raise InvalidData(f"{where}: recipe.settings.losses.hidden_projection must be one of "
                              f"{', '.join(_PROJECTIONS)}; got {start!r}")
    return rec


def _losses(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record's ``recipe.settings.losses`` mapping (the record's own object, to fill in), or None."""
    settings = rec["recipe"].get("settings")
    losses = settings.get("losses") if isinstance(settings, Mapping) else None
    return losses if isinstance(losses, dict) else None


def _hidden_weight(losses: Mapping[str, Any]) -> float:
    """The hidden loss's weight in a loss config as a dict (0 when absent or unreadable; a weight schedule can
    only name a loss whose weight is > 0, so this is > 0 whenever the hidden loss trained at any step)."""
    weights = losses.get("weights")
    w = weights.get("hidden") if isinstance(weights, Mapping) else None
    return float(w) if isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) else 0.0


def read_table(path: str | Path, *, missing_ok: bool = True) -> list[dict[str, Any]]:
    """Every record of the table at ``path`` (``[]`` for a missing file when ``missing_ok``).

    Raises:
        InvalidData: a line that is not a record of schema <= :data:`SCHEMA_VERSION` (file and line named).
    """
    path = Path(path)
    if not path.exists():
        if missing_ok:
            return []
        raise InvalidData(f"{path}: no such experience table")
    if path.is_dir():
        raise InvalidData(f"{path}: is a folder; --experience takes a .jsonl file")
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidData(f"{path}: not UTF-8 text (a corrupt experience table)") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise InvalidData(f"{path}, line {n}: not valid JSON (a corrupt experience table; remove or fix that line)") from None
        out.append(validate_record(rec, f"{path}, line {n}"))
    return out


def append_record(path: str | Path, record: Mapping[str, Any]) -> Path:
    """Append ``record`` as one line to the table at ``path`` (created with its folder when missing).

    One ``os.write`` of the whole line to an ``O_APPEND`` file under an exclusive ``flock``: two
    processes appending at once never interleave their lines.
    """
    path = Path(path)
    rec = validate_record(json.loads(json.dumps(record, default=str)), "the new record")
    line = (json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no advisory locks here: O_APPEND alone keeps a single write whole
            fcntl = None  # type: ignore[assignment]
        try:
            # a previous writer killed mid-line leaves no newline: start ours on a line of its own
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        line = b"\n" + line
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {path} ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return path


def make_record(*, recipe_name: str, settings: Mapping[str, Any], features: Mapping[str, Any], arch: Mapping[str, Any],
                metric: str, student: float | None, teacher: float | None, steps: int, task_id: str, source: str,
                task_name: str | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A schema-:data:`SCHEMA_VERSION` record (see the module docstring); ``settings["losses"]``, when given,
    gets ``hidden_projection`` stated (``aligned`` when it lacks the key, as :class:`~hwnas.distill.losses.LossConfig`
    reads it)."""
    from hwnas import __version__

    kept = (student / teacher) if student is not None and teacher else None
    settings = dict(settings)
    losses = settings.get("losses")
    if hasattr(losses, "to_dict"):
        losses = losses.to_dict()
    if isinstance(losses, Mapping):
        # stated even at the default: a loss config without it means aligned, a schema-1 record without it random
        settings["losses"] = {**losses, "hidden_projection": losses.get("hidden_projection", "aligned")}
    rec = {
        "schema": SCHEMA_VERSION,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "hwnas": __version__,
        "task": {"id": task_id, "source": Path(str(source)).name, "name": task_name},
        "recipe": {"name": recipe_name, "settings": settings},
        "features": dict(features),
        "arch": dict(arch),
        "result": {"metric": metric, "student": student, "teacher": teacher, "kept": kept, "steps": steps},
    }
    if extra:
        rec["extra"] = dict(extra)
    return rec
