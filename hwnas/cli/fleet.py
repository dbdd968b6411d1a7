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
        TextColumn("[bold]profiling[/] {task.fields[device]} on the fleet"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[nodes]}"), console=con,
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

    with progress:  # Ctrl-C: hwnas.cli.main prints the one "interrupted" line
        summary = profile_on_cluster(config, out, fleet, resume=resume, on_start=on_start,
                                     on_status=on_status, on_progress=on_progress)
    _print_summary(summary, node_rows(summary))
    for ns in summary.slow_nodes:
        click.echo(f"warning: node {_node_label(ns)} measured the reference architecture {ns.ratio:.2f}x slower "
                   f"than the other nodes; its records carry node_slow=true", err=True)
    if summary.stopped == "time budget":
        click.echo(f"time budget reached: {summary.remaining} task(s) left; continue with --resume", err=True)
    if summary.failed_chunks:
        click.echo(f"{summary.failed_tasks} task(s) failed after {fleet.max_retries} retries; rerun with --resume", err=True)
        raise SystemExit(1)


@click.command("distill front")
@click.argument("search_dir", type=click.Path(file_okay=False))
@click.option("--top-k", type=int, default=3, show_default=True, help="How many front members to distil, best score first.")
@click.option("--task", required=True, help="Training data (as hwnas distill --task); on a fleet, a path every node sees.")
@click.option("--eval", "eval_", default=None, help="Evaluation data (default: hold out the last 10%% of --task).")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Where the students go, one folder each [default: SEARCH_DIR/students].")
@click.option("--teacher", default="default", show_default=True, help="'default' (all-MiniLM-L6-v2) or a model folder.")
@click.option("--supernet", default=None, help="Supernet folder the students start from [default: none, slices of the teacher].")
@click.option("--init", type=click.Choice(["teacher", "random"]), default="teacher", show_default=True)
@click.option("--losses", default="logits=1,hidden=1,attention=1", show_default=True,
              help="Loss weights name=weight,... or a JSON/YAML recipe file (as hwnas distill --losses).")
@click.option("--steps", type=int, default=600, show_default=True, help="Task-distillation steps per student.")
@click.option("--teacher-steps", type=int, default=600, show_default=True, help="Fine-tuning steps of the shared teacher.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--max-len", type=int, default=128, show_default=True)
@click.option("--limit", type=int, default=None, help="Use only the first N training examples.")
@click.option("--augment", type=int, default=0, show_default=True, help="Noisy copies of each training example.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--measure", is_flag=True,
              help="Measure each student's latency after training; on a fleet its task then also takes the node's "
                   "measuring resource, so it is timed alone on its node.")
@click.option("--quick", is_flag=True, help="With --measure: the fast, loose timing protocol (smoke tests only).")
@click.option("--cluster", type=click.Choice(["ray", "local"]), default="ray", show_default=True,
              help="ray: one task per student on a Ray cluster; local: one after another here.")
@click.option("--ray-address", default=None, help="With --cluster ray: the head's HOST:PORT or 'auto' [default: $RAY_ADDRESS].")
@click.option("--resource", "ray_resource", default=None,
              help="With --measure: the measuring resource a node offers [default: hwnas-device-<device>].")
@click.option("--train-device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="cuda: each student task takes one Ray GPU.")
@click.option("--cpus-per-student", type=int, default=1, show_default=True,
              help="Ray CPUs per student task (and its torch threads on the CPU).")
@click.option("--max-retries", type=int, default=2, show_default=True,
              help="Times a student is run again after its worker or node died (it resumes from its checkpoint).")
def distill_front(search_dir, top_k, task, eval_, out, teacher, supernet, init, losses, steps, teacher_steps,
                  batch_size, lr, max_len, limit, augment, seed, measure, quick, cluster, ray_address, ray_resource,
                  train_device, cpus_per_student, max_retries) -> None:
    """Distil the --top-k best students of a search front in parallel, one Ray task per student.

    Each student goes into its own folder under --out, written by its task only;
    a folder that holds a finished student with the same settings is skipped,
    so rerunning after a kill continues where it stopped. The teacher is
    fine-tuned once, before the students start. docs/fleet.md shows a cluster.

    \b
    Examples:
      hwnas distill front runs/search-5ms --top-k 4 --task data/train.tsv --ray-address HEAD:6379
      hwnas distill front runs/search-5ms --top-k 2 --task data/train.tsv --cluster local
    """
    from hwnas.distill.api import DistillConfig
    from hwnas.distill.fleet import distill_front as run, front_students
    from hwnas.distill.losses import LossConfig
    from hwnas.errors import InvalidConfig

    if cluster == "local" and (ray_address or ray_resource):
        raise InvalidConfig("--ray-address and --resource need --cluster ray")
    first = front_students(search_dir, top_k, out or "students")[0]
    base = DistillConfig(arch=first.arch, task=task, eval=eval_, teacher=teacher, supernet=supernet, init=init,
                         losses=LossConfig.parse(losses), steps=steps, teacher_steps=teacher_steps,
                         batch_size=batch_size, lr=lr, max_len=max_len, limit=limit, augment=augment, seed=seed,
                         measure=measure, timing="quick" if quick else "default")
    fleet = None
    if cluster == "ray":
        from hwnas.profiling.fleet import FleetConfig

        fleet = FleetConfig(address=ray_address, resource=ray_resource)
    con = console(stderr=True)
    summary = run(search_dir, top_k, base, out, cluster=cluster, fleet=fleet, train_device=train_device,
                  cpus=cpus_per_student, max_retries=max_retries, on_status=lambda m: con.print(m, markup=False))
    from rich.table import Table

    table = Table(title=f"{len(summary.students)} student(s) of the front of {search_dir}")
    for col in ("student", "search score", "predicted", "node", "score", "retained"):
        table.add_column(col, justify="left" if col in ("student", "node") else "right")
    for s in summary.students:
        r = summary.reports.get(s.name) or {}
        score, kept = r.get("student_score"), r.get("retained")
        table.add_row(s.name, f"{s.record.get('score', float('nan')):.4f}", fmt_ms(s.record.get("latency_ms") or float("nan")),
                      summary.nodes.get(s.name, "-"), "-" if score is None else f"{score:.4f}",
                      "-" if kept is None else f"{kept:.1%}")
    console().print(table)
    click.echo(f"written to {summary.out} ({len(summary.skipped)} finished before, skipped); took {fmt_s(summary.wall_s)}")
