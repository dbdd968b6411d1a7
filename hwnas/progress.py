"""Typed progress events: how library code tells its caller how far long work has got.

Library code (training, tokenising, profiling, search) never draws: it calls an
``on_progress`` callback with a :class:`ProgressEvent` and an ``on_status`` callback
with one line of text. Only the command line (``hwnas.cli``) turns these into rich
bars and log lines, so the same functions run silently in tests, notebooks and
Ray workers.

    def on_progress(ev: ProgressEvent) -> None:
        print(ev.stage, ev.completed, "/", ev.total, ev.metrics.get("loss"))

    train_supernet(cfg, on_progress=on_progress)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

__all__ = ["ProgressEvent", "ProgressCallback", "StatusCallback", "emit"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of progress in a named stage.

    Attributes:
        stage: what is progressing (``"supernet"``, ``"tokenise"``, ``"teacher"``,
            ``"distill"``, ``"search"``, ...).
        completed: units done so far (steps, rows, evaluations).
        total: units planned, or ``None`` when unknown (a spinner, not a bar).
        metrics: numbers worth showing beside the bar (``loss``, ``lr``, ``best``).
        checkpoint: ``True`` when a checkpoint was written at this step.
    """

    stage: str
    completed: int
    total: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    checkpoint: bool = False


ProgressCallback = Callable[[ProgressEvent], None]
StatusCallback = Callable[[str], None]


def emit(callback: ProgressCallback | None, stage: str, completed: int, total: int | None = None,
         metrics: Mapping[str, float] | None = None, checkpoint: bool = False) -> None:
    """Call ``callback`` with one event when it is set; a no-op otherwise."""
    if callback is not None:
        callback(ProgressEvent(stage, completed, total, dict(metrics or {}), checkpoint))
