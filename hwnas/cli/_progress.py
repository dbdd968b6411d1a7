"""Rich progress bars drawn from :class:`hwnas.progress.ProgressEvent`: one row per stage.

Library code only emits events; commands hand :meth:`ProgressBars.event` and
:meth:`ProgressBars.status` to it as ``on_progress`` and ``on_status``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hwnas.cli._common import console
from hwnas.progress import ProgressEvent

__all__ = ["ProgressBars"]


class ProgressBars:
    """A rich display with a row per stage (a spinner when the total is unknown); silent when ``quiet``.

    A row shows its stage's latest numeric metrics. An event with ``completed == total == 1``
    says the stage is over (``hwnas run`` sends one per stage): its row is filled at its own
    total, and so are the rows ``finishes`` names for that stage (distill's teacher rows).
    """

    def __init__(self, quiet: bool = False, *, label: str = "",
                 finishes: Mapping[str, Sequence[str]] | None = None) -> None:
        self.quiet, self.label, self.finishes = quiet, label, dict(finishes or {})
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressBars:
        if not self.quiet:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                      console=console(stderr=True))
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def status(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, style="dim", markup=False, highlight=False)

    def event(self, ev: ProgressEvent) -> None:
        if self._progress is None:
            return
        if ev.stage not in self._tasks:
            name = f"{self.label} {ev.stage}".strip()
            self._tasks[ev.stage] = self._progress.add_task(f"{name:<10}", total=ev.total, metrics="")
        if ev.completed == ev.total == 1:  # the stage is over: fill its rows
            for stage in (ev.stage, *self.finishes.get(ev.stage, ())):
                if stage in self._tasks:
                    total = next(t.total for t in self._progress.tasks if t.id == self._tasks[stage]) or 1
                    self._progress.update(self._tasks[stage], total=total, completed=total)
            return
        shown = "  ".join(f"{k} {v:.4g}" for k, v in ev.metrics.items() if isinstance(v, (int, float)) and not math.isnan(v))
        self._progress.update(self._tasks[ev.stage], completed=ev.completed, total=ev.total,
                              **({"metrics": shown[:60]} if shown else {}))
