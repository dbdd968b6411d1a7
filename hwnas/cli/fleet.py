"""``hwnas profile --cluster ray``: one progress bar with per-node throughput, a per-node summary."""

from __future__ import annotations

import click

from hwnas.cli._common import console, fmt_ms, fmt_s


def _node_label(ns) -> str:
    return ns.hostname and f"{ns.short_id} ({ns.hostname})" or ns.short_id


def node_rows(summary) -> list[tuple[str, str]]:
    """Summary-table lines for a fleet run: the cluster, then one line per node."""
    rows = [
        ("cluster", f"{summary.cluster}, {summary.slots} slot(s) of {summary.resource}"),
        ("chunks", f"{summary.chunks} of up to {summary.chunk_size} task(s); "
                   f"{summary.append_s / max(1, summary.chunks) * 1e3:.1f} ms per driver append"),
        ("time rows above", "summed over all nodes (they exceed the wall time when nodes run side by side)"),
    ]
    if summary.failed_chunks:
        rows.append(("failed after retries", f"{summary.failed_chunks} chunk(s), {summary.failed_tasks} task(s): rerun with --resume"))
    if summary.duplicates_dropped:
        rows.append(("duplicates dropped", str(summary.duplicates_dropped)))
    for ns in summary.nodes:
        ratio = "-" if ns.ratio is None else f"{ns.ratio:.2f}x the others"
        flag = "  SLOW: records flagged node_slow" if ns.slow else ""
        rows.append((
            f"node {_node_label(ns)}",
            f"{ns.records} record(s) in {ns.chunks} chunk(s), {ns.throughput(summary.wall_s):.2f}/s, "
            f"busy {fmt_s(ns.busy_s)}, reference {fmt_ms(ns.median_reference_ms)} ({ratio}){flag}",
        ))
    return rows


def run_fleet_profile(config, out, resume, *, address, resource, max_retries) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hwnas.cli.profile import _print_summary
    from hwnas.profiling.fleet import FleetConfig, profile_on_cluster

    fleet = FleetConfig(address=address, resource=resource, max_retries=max_retries)
    con = console(stderr=True)
    progress = Progress(
        TextColumn("[bold]profiling[/] {task.fields[device]} on the fleet"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[nodes]}"),
        console=con,
        transient=False,
    )
    state = {"task": None}

    def on_start(todo: int, done: int) -> None:
        if done:
            con.print(f"resuming {out}: {done} measurement(s) already there, {todo} to go")
        state["task"] = progress.add_task("profile", total=todo, device=config.device, nodes="")

    def on_status(message: str) -> None:
        if state["task"] is None:
            con.print(message)
        else:
            progress.update(state["task"], nodes=message)

    def on_progress(p) -> None:
        per_node = " ".join(
            f"{ns.short_id}:{ns.throughput(p.wall_s):.1f}/s{'(slow)' if ns.slow else ''}"
            for ns in sorted(p.nodes.values(), key=lambda s: s.node_id)
        )
        progress.update(state["task"], completed=p.done, nodes=per_node)

    try:
        with progress:
            summary = profile_on_cluster(config, out, fleet, resume=resume, on_start=on_start,
                                         on_status=on_status, on_progress=on_progress)
    except KeyboardInterrupt:
        con.print(f"interrupted: every chunk that came back is saved in {out}; continue with --resume")
        raise
    _print_summary(summary, node_rows(summary))
    for ns in summary.slow_nodes:
        click.echo(f"warning: node {_node_label(ns)} measured the reference architecture {ns.ratio:.2f}x slower "
                   f"than the other nodes; its records carry node_slow=true", err=True)
    if summary.stopped == "time budget":
        click.echo(f"time budget reached: {summary.remaining} task(s) left; continue with --resume", err=True)
    if summary.failed_chunks:
        click.echo(f"{summary.failed_tasks} task(s) failed after {fleet.max_retries} retries; rerun with --resume", err=True)
        raise SystemExit(1)
