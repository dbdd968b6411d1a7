"""Rich progress bars drawn from :class:`hwnas.progress.ProgressEvent`: one bar per stage.

Library code only emits events; commands hand :meth:`ProgressBars.event` and
:meth:`ProgressBars.status` to it as ``on_progress`` and ``on_status``.
"""

from __future__ import annotations

from typing import Any

from hwnas.cli._common import console
from hwnas.progress import ProgressEvent

__all__ = ["ProgressBars"]


class ProgressBars:
    """A rich display with a bar per stage (a spinner when the total is unknown); silent when ``quiet``."""

    def __init__(self, quiet: bool = False, *, label: str = "") -> None:
        self.quiet, self.label = quiet, label
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
            self._progress.console.print(f"[dim]{text}[/dim]")

    def event(self, ev: ProgressEvent) -> None:
        if self._progress is None:
            return
        if ev.stage not in self._tasks:
            name = f"{self.label} {ev.stage}".strip()
            self._tasks[ev.stage] = self._progress.add_task(f"{name:<9}", total=ev.total, metrics="")
        loss = ev.metrics.get("loss")
        shown = f"loss {loss:.4f}" if loss is not None else ("rows" if ev.total is None else "")
        self._progress.update(self._tasks[ev.stage], completed=ev.completed, total=ev.total, metrics=shown)
