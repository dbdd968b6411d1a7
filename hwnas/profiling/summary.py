"""What an existing profile holds: records, devices, shapes, latency spread, noise and drift.

Used by ``hwnas profile show`` and by the run report. Reading never writes: a
torn last line (an interrupted write) is skipped and counted.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import ProfileStoreError

__all__ = ["ProfileSummary", "summarize_profile", "load_profile_records"]


@dataclass
class ProfileSummary:
    """Figures of one profile file (latencies in ms).

    Attributes:
        records: complete records read; ``torn_tail``: whether an incomplete last line was skipped.
        devices: ``"cpu, 1 thread, fp32" -> count``; ``shapes``: ``"seq 128, batch 1" -> count``.
        latency_ms: min, median, max of the records' medians.
        spread: median and max of IQR / median per record; ``noisy``: records flagged noisy
            (their IQR exceeded the timing protocol's bound even after a re-measurement).
        reference: drift of the reference architecture, when records carry ``reference_ms``
            (its latency measured in the same rounds): count, first, median, min, max and
            ``drift`` = (max - min) / median; ``None`` when no record carries it.
    """

    path: str
    records: int
    torn_tail: bool = False
    devices: dict[str, int] = field(default_factory=dict)
    spaces: dict[str, int] = field(default_factory=dict)
    shapes: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    noisy: int = 0
    remeasured: int = 0
    reference: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(label, text) rows for a terminal table or a report."""
        lat = self.latency_ms
        out = [
            ("file", self.path + (" (an incomplete last line was skipped)" if self.torn_tail else "")),
            ("records", str(self.records)),
            ("devices", ", ".join(f"{k} ({v})" for k, v in self.devices.items())),
            ("spaces", ", ".join(f"{k} ({v})" for k, v in self.spaces.items()) or "-"),
            ("shapes", ", ".join(f"{k} ({v})" for k, v in self.shapes.items())),
            ("latency", f"{lat['min']:.3g} ms .. {lat['max']:.3g} ms (median {lat['median']:.3g} ms, "
                        f"slowest/fastest {lat['max'] / lat['min']:.2f}x)"),
        ]
        if self.params:
            out.append(("parameters", f"{self.params['min'] / 1e6:.2f}M .. {self.params['max'] / 1e6:.2f}M"))
        if self.spread:
            out.append(("spread (IQR/median)", f"median {self.spread['median']:.1%}, worst {self.spread['max']:.1%}"))
        out.append(("noisy records", f"{self.noisy} of {self.records} ({self.noisy / self.records:.0%}); "
                                     f"{self.remeasured} re-measured"))
        ref = self.reference
        if ref:
            out.append(("reference drift", f"{ref['drift']:.1%} across {ref['count']} records "
                                           f"({ref['min']:.3g}-{ref['max']:.3g} ms, median {ref['median']:.3g} ms)"))
        else:
            out.append(("reference drift", "not recorded (no record carries reference_ms)"))
        return out


def load_profile_records(path: str | Path) -> tuple[list[dict[str, Any]], bool]:
    """Every complete record of a profile and whether a torn last line was skipped.

    Raises:
        ProfileStoreError: missing file, a corrupt line, or no records.
    """
    from hwnas.profiling.store import read_records

    path = Path(path)
    if path.is_dir():
        raise ProfileStoreError(f"{path} is a folder; give a profile file (.jsonl) written by `hwnas profile`")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(read_records(path))
    torn = any("incomplete last line" in str(w.message) for w in caught)
    bad = [i for i, r in enumerate(records, 1) if not isinstance(r, dict) or "latency_ms" not in r or "layers" not in r]
    if bad:
        raise ProfileStoreError(f"{path}: record {bad[0]} is not an hwnas profile record (needs layers, ..., latency_ms)")
    if not records:
        raise ProfileStoreError(f"{path} holds no complete profile records")
    return records, torn


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())}


def summarize_profile(path: str | Path) -> ProfileSummary:
    """Read ``path`` (a ``hwnas profile`` JSONL file) and summarise it."""
    records, torn = load_profile_records(path)
    devices = Counter(
        f"{r.get('device', '?')}, {r.get('threads', 'default')} thread{'s' if r.get('threads') != 1 else ''}, {r.get('dtype', 'fp32')}"
        for r in records)
    shapes = Counter(f"seq {r.get('seq_len', '?')}, batch {r.get('batch_size', '?')}" for r in records)
    spaces = Counter(str(r["space"]) for r in records if r.get("space"))
    s = ProfileSummary(path=str(path), records=len(records), torn_tail=torn, devices=dict(devices),
                       spaces=dict(spaces), shapes=dict(shapes), latency_ms=_stats([r["latency_ms"] for r in records]))
    params = [r["params"] for r in records if isinstance(r.get("params"), (int, float))]
    if params:
        s.params = _stats(params)
    spread = [r["spread"] for r in records if isinstance(r.get("spread"), (int, float)) and r["spread"] == r["spread"]]
    if spread:
        s.spread = _stats(spread)
    s.noisy = sum(bool(r.get("noisy")) for r in records)
    s.remeasured = sum(bool(r.get("remeasured")) for r in records)
    ref = [float(r["reference_ms"]) for r in records if isinstance(r.get("reference_ms"), (int, float))]
    if ref:
        st = _stats(ref)
        s.reference = {"count": len(ref), "first": ref[0], **st, "drift": (st["max"] - st["min"]) / st["median"]}
    return s
