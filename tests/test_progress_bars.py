"""The one progress display (cli/_progress.py) that hwnas run, search and supernet train draw through."""

from __future__ import annotations

from hwnas.cli._progress import ProgressBars
from hwnas.progress import ProgressEvent


def _rows(bars: ProgressBars) -> dict[str, tuple[float, float | None, str]]:
    tasks = {t.id: t for t in bars._progress.tasks}
    return {stage: (tasks[i].completed, tasks[i].total, tasks[i].fields["metrics"]) for stage, i in bars._tasks.items()}


def test_a_row_per_stage_with_its_metrics_and_a_finished_stage_filled():
    with ProgressBars(finishes={"distill": ("teacher",)}) as bars:
        bars.event(ProgressEvent("supernet", 3, 10, {"loss": 2.5, "lr": float("nan")}))
        bars.event(ProgressEvent("teacher", 2, 8))
        bars.event(ProgressEvent("distill", 5, 20, {"loss": 0.75}))
        rows = _rows(bars)
        assert rows["supernet"] == (3, 10, "loss 2.5")  # NaN metrics are not shown
        assert rows["distill"] == (5, 20, "loss 0.75")
        bars.event(ProgressEvent("supernet", 1, 1))  # hwnas run: the stage is over
        bars.event(ProgressEvent("distill", 1, 1))
        rows = _rows(bars)
        assert rows["supernet"][:2] == (10, 10) and rows["distill"][:2] == (20, 20)
        assert rows["teacher"][:2] == (8, 8)  # distill's own teacher row is filled with it


def test_quiet_draws_nothing():
    with ProgressBars(quiet=True) as bars:
        bars.event(ProgressEvent("search", 1, 4))
        bars.status("a line")
        assert bars._progress is None and bars._tasks == {}
