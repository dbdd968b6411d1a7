"""Small data sets shipped with hwnas (see README.md in this folder for origin and licence)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "embedded_path"]

DATA_DIR = Path(__file__).resolve().parent


def embedded_path(name: str) -> Path:
    """Path of an embedded file, e.g. ``embedded_path("sst2/train.tsv")``."""
    path = DATA_DIR / name
    if not path.is_file():
        available = sorted(str(p.relative_to(DATA_DIR)) for p in DATA_DIR.rglob("*") if p.is_file() and p.suffix in (".tsv", ".txt", ".csv", ".jsonl"))
        raise FileNotFoundError(f"no embedded data file {name!r}; available: {', '.join(available)}")
    return path
