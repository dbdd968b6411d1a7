"""The reference architecture: a fixed probe of how fast the machine is right now.

Absolute latency on a shared machine drifts by 5-10% over minutes. Interleaved
rounds protect comparisons *within* one run; they cannot protect a comparison
between a profile taken yesterday and a verification taken now. So every
interleaved chunk of a profile also times one fixed *reference architecture*
of its space, and stores that latency with each record (``reference_ms``).
A later measurement that times the same reference in its own rounds can divide
out the machine's speed:

    speed now vs then   = reference_ms(now) / reference_ms(at profiling)
    drift-normalised ms = measured_ms / speed

A speed above 1 means the machine runs slower now than when it was profiled.

The record fields (schema shared with every profile writer, the Ray runner
included):

* ``reference_arch``: the reference's key (``layers=..,hidden=..,heads=..,ffn=..``);
* ``reference_batch_size``, ``reference_seq_len``: the shape it was timed at;
* ``reference_ms``: its median in the same interleaved rounds as the record;
* ``reference_ratio``: the median, over the rounds both were timed in, of the
  record's per-call time divided by the reference's in the same round. It is
  the drift-free figure: a slowdown lasting a round or more cancels in it, where
  the ratio of two medians only cancels a slowdown common to the whole chunk.
  ``reference_ratio * reference latency at profiling time`` is the record's
  latency at the machine's speed of profiling time;
* ``clock``: ``"wall"`` or ``"thread_cpu"`` (see :mod:`hwnas.devices.timing`).

Profiles written before these fields existed have none; they still load, and
drift is then reported as "no reference recorded".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas.space import Architecture, SearchSpace

__all__ = ["reference_architecture", "fit_reference", "Drift", "REFERENCE_FIELDS"]

#: Record fields written by a profile with a reference (``None`` values when it had none).
REFERENCE_FIELDS = ("reference_arch", "reference_batch_size", "reference_seq_len", "reference_ms", "reference_ratio")


def _middle(values: Sequence[int]) -> int:
    values = sorted(set(values))
    return values[(len(values) - 1) // 2]


def reference_architecture(space: SearchSpace | None = None, archs: Iterable[Architecture] = ()) -> Architecture:
    """The reference of ``space``: the middle choice of every dimension.

    ``heads`` is the middle of the values that divide the chosen ``hidden``.
    Without a space, the same rule is applied to the values used by ``archs``
    (a profile of an explicit architecture list), so one list always gets the
    same reference.
    """
    if space is not None:
        layers, hiddens, heads, ffns = space.layers, space.hidden, space.heads, space.ffn
    else:
        archs = list(archs)
        if not archs:
            raise ValueError("a reference needs a space or at least one architecture")
        layers = [a.layers for a in archs]
        hiddens = [a.hidden for a in archs]
        heads = [a.heads for a in archs]
        ffns = [a.ffn for a in archs]
    hidden = _middle(hiddens)
    dividing = [a for a in sorted(set(heads)) if hidden % a == 0] or [a for a in (1, 2, 4) if hidden % a == 0]
    return Architecture(_middle(layers), hidden, _middle(dividing), _middle(ffns))


def fit_reference(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """What a predictor's manifest keeps about the reference of its training profile.

    Returns ``{"arch", "batch_size", "seq_len", "latency_ms", "n_chunks", "min_ms", "max_ms"}``
    (``latency_ms``: the median over the profile's chunks; min and max show how
    much the machine drifted while it was profiled), or ``None`` when no record
    has a reference.
    """
    per_chunk: dict[tuple[Any, ...], float] = {}
    ident = None
    for r in records:
        ms = r.get("reference_ms")
        if ms is None or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
            continue
        this = (r.get("reference_arch"), r.get("reference_batch_size"), r.get("reference_seq_len"))
        if ident is None:
            ident = this
        elif this != ident:
            continue  # a profile holds one reference; a foreign one is not comparable
        # records of one chunk share one reference measurement
        per_chunk[(r.get("run_id"), r.get("timestamp"), float(ms))] = float(ms)
    if not per_chunk or ident is None:
        return None
    values = np.array(list(per_chunk.values()))
    return {"arch": ident[0], "batch_size": ident[1], "seq_len": ident[2], "latency_ms": float(np.median(values)),
            "n_chunks": int(values.size), "min_ms": float(values.min()), "max_ms": float(values.max())}


@dataclass(frozen=True)
class Drift:
    """The machine's speed now relative to profiling time, from the reference.

    Attributes:
        reference_arch: key of the reference architecture, or ``None`` (none recorded).
        now_ms: the reference measured now, in the verification's rounds.
        then_ms: the reference at profiling time (the predictor's manifest).
    """

    reference_arch: str | None
    now_ms: float | None
    then_ms: float | None

    @property
    def known(self) -> bool:
        return bool(self.now_ms and self.then_ms and math.isfinite(self.now_ms) and math.isfinite(self.then_ms))

    @property
    def speed(self) -> float | None:
        """now / then: above 1, the machine is slower now than when it was profiled."""
        return self.now_ms / self.then_ms if self.known else None  # type: ignore[operator]

    def normalise(self, measured_ms: float, ratio: float | None = None) -> float | None:
        """``measured_ms`` at the machine's speed of profiling time, or ``None`` without a reference.

        With ``ratio`` (the per-round ratio to the reference, measured in the same
        rounds) the result is ``ratio * then_ms``, which cancels shorter drifts
        than dividing by the ratio of medians.
        """
        if ratio is not None and self.then_ms and math.isfinite(ratio) and ratio > 0:
            return ratio * self.then_ms
        s = self.speed
        return measured_ms / s if s else None

    def describe(self) -> str:
        """One sentence: "this machine runs 8.0% slower than when it was profiled"."""
        if self.reference_arch is None or self.then_ms is None:
            return "no reference recorded in the predictor (profiled before hwnas measured one): drift unknown"
        if not self.known:
            return "the reference was not measured now: drift unknown"
        change = self.speed - 1.0  # type: ignore[operator]
        if abs(change) < 0.005:
            return "this machine runs at the same speed as when it was profiled"
        return f"this machine runs {abs(change) * 100:.1f}% {'slower' if change > 0 else 'faster'} than when it was profiled"

    def to_dict(self) -> dict[str, Any]:
        return {"reference_arch": self.reference_arch, "reference_ms_now": self.now_ms,
                "reference_ms_profiled": self.then_ms, "speed_vs_profile": self.speed, "note": self.describe()}
