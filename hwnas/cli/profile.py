"""``hwnas profile``: measure architectures on a device into a resumable JSONL file."""

from __future__ import annotations

import click

from hwnas.cli._common import console, fmt_ms, fmt_s, parse_duration_s
from hwnas.cli._options import list_option


@click.command()
@click.option("--device", "device_name", default="cpu", show_default=True, help="Device backend (see `hwnas devices`).")
@click.option("--space", "space_name", default=None, help="Built-in space (tiny, small, base, full) or a YAML/JSON space file. [default: small]")
@click.option("--samples", default=200, show_default=True, type=int, help="Architectures to sample from the space.")
@list_option("--seq-len", default="128", show_default=True, help="Sequence length(s) of the latency shape: 64,128.")
@list_option("--batch-size", default="1", show_default=True, help="Batch size(s): 1,8.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .jsonl file (never overwritten).")
@click.option("--resume", is_flag=True, help="Continue --out: skip what it already holds, measure the rest.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it is a profile hwnas wrote (its records are lost).")
@click.option("--threads", default="1", show_default=True, help="Intra-op threads, or 'default' to leave the runtime's choice.")
@click.option("--dtype", default="fp32", show_default=True, help="Data type (fp32, bf16, fp16: as the device supports).")
@click.option("--device-option", "device_option", multiple=True, metavar="KEY=VALUE",
              help="A backend's own option, repeatable: cuda_graphs=true for cuda, mode=eager for tpu "
                   "(`hwnas devices` lists them). Recorded with every sample.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the sampling plan, weights, inputs and round order.")
@click.option("--plan", type=click.Choice(["lhs", "random"]), default="lhs", show_default=True,
              help="Sampling plan: space-filling Latin hypercube with corners, or uniform random.")
@click.option("--archs", "archs_file", type=click.Path(), default=None,
              help="Profile these architectures (jsonl/json/txt of layers=..,hidden=..,heads=..,ffn=..) instead of sampling.")
@click.option("--time-budget", default=None, help="Stop starting new work after this long (e.g. 30m, 2h); resume later.")
@click.option("--interleave", default=32, show_default=True, type=int,
              help="Architectures timed together in interleaved rounds (also capped at 3 GiB of weights).")
@click.option("--max-time", default="4s", show_default=True,
              help="Cap on timed inference per architecture and pass (e.g. 2.5s); stops earlier once the median is tight.")
@click.option("--quick", is_flag=True, help="A fast, loose timing protocol for smoke tests (not for datasets).")
@click.option("--clock", type=click.Choice(["wall", "thread_cpu"]), default="wall", show_default=True,
              help="wall: elapsed time. thread_cpu: CPU time of the measuring thread, for one-thread cpu/onnxruntime "
                   "profiles on a shared machine (leaves out time spent descheduled).")
@click.option("--until-accuracy", type=float, default=None,
              help="Adaptive: profile in rounds where the predictor is least certain until its cross-validated "
                   "share within ±10% reaches this (e.g. 0.95); --samples is then the budget.")
@click.option("--round-size", default=8, show_default=True, type=int, help="Measurements per adaptive round.")
@click.option("--cluster", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: measure in this process; ray: spread chunks over a Ray cluster's nodes (docs/fleet.md).")
@click.option("--ray-address", default=None,
              help="With --cluster ray: the head's HOST:PORT or 'auto' [default: $RAY_ADDRESS].")
@click.option("--resource", "ray_resource", default=None,
              help="With --cluster ray: the custom resource a measuring node offers [default: hwnas-device-<device>].")
@click.option("--max-retries", default=3, show_default=True, type=int,
              help="With --cluster ray: times a chunk is run again after its worker or node died.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary as one JSON object on stdout.")
@click.option("--quiet", is_flag=True, help="No progress display (the summary is still printed).")
def profile(device_name, space_name, samples, seq_len, batch_size, out, resume, overwrite, threads, dtype, seed, plan,
            archs_file, time_budget, device_option, interleave, max_time, quick, until_accuracy, round_size, clock,
            cluster, ray_address, ray_resource, max_retries, as_json, quiet) -> None:
    """Measure sampled architectures on a device, robustly, into a resumable JSONL file.

    \b
    Examples:
      hwnas profile --device cpu --space small --samples 200 --seq-len 128 --batch-size 1 --out profiles/cpu.jsonl
      hwnas profile --device onnxruntime --space small --samples 200 --out profiles/ort.jsonl
      hwnas profile ... --resume        # after a crash or Ctrl-C
      hwnas profile ... --cluster ray --ray-address HEAD:6379   # on a fleet (docs/fleet.md)
    """
    from hwnas.devices.timing import TimingConfig
    from hwnas.errors import InvalidConfig
    from hwnas.profiling.runner import ProfileConfig
    from hwnas.profiling.runner import profile as run_profile

    from hwnas.cli._options import check_seq_len, check_threads, parse_int_list, require_int
    from hwnas.outputs import check_not_input, check_path_shape

    if threads == "default":
        n_threads = None
    else:
        try:
            n_threads = int(threads) if len(threads) <= 6 else None
        except ValueError:
            n_threads = None
        if n_threads is None or n_threads < 1:
            raise InvalidConfig(f"--threads must be an integer >= 1 or 'default'; got {threads!r}") from None
        check_threads(n_threads)
    require_int(samples, "--samples")
    require_int(interleave, "--interleave")
    require_int(round_size, "--round-size")
    require_int(max_retries, "--max-retries", minimum=0)
    max_time_s = parse_duration_s(max_time, what="--max-time")  # checked even when --quick replaces it
    if quick and max_time != "4s":
        raise InvalidConfig("--quick sets its own --max-time; give one of --quick or --max-time")
    seq_lens = parse_int_list(seq_len, "--seq-len")
    batch_sizes = parse_int_list(batch_size, "--batch-size", maximum=1 << 20, example="1,8")
    for value in seq_lens:
        check_seq_len(value, "--seq-len")
    check_path_shape(out, option="--out")
    if resume and overwrite:
        raise InvalidConfig("give one of --resume (continue --out) and --overwrite (replace it)")
    check_not_input(out, [("--archs", archs_file), ("--space", space_name if space_name and
                                                        space_name not in ("tiny", "small", "base", "full") else None)])
    from hwnas.devices.registry import parse_device_options

    config = ProfileConfig(
        device=device_name,
        device_options=parse_device_options(device_name, device_option),
        space=space_name or ("" if archs_file else "small"),
        samples=samples,
        seq_lens=seq_lens,
        batch_sizes=batch_sizes,
        threads=n_threads,
        dtype=dtype,
        seed=seed,
        plan=plan,
        archs_file=archs_file,
        check_space=space_name is not None,
        time_budget_s=parse_duration_s(time_budget, what="--time-budget") if time_budget else None,
        interleave=interleave,
        timing=TimingConfig.quick(clock=clock) if quick else TimingConfig(max_time_s=max_time_s, clock=clock),
    )
    if cluster == "local" and (ray_address or ray_resource):
        raise InvalidConfig("--ray-address and --resource need --cluster ray")
    _check_memory(config, space_name, archs_file)
    if overwrite:
        _replace_profile(out)
    from hwnas.outputs import remove_if_unfinished

    with remove_if_unfinished(out):  # a run that fails before its first record leaves no file or folder behind
        _dispatch(config, out, resume, cluster, until_accuracy, round_size, ray_address, ray_resource, max_retries,
                  run_profile, quiet)


def _check_memory(config, space_name: str | None, archs_file: str | None) -> None:
    """Every architecture of --archs (or the largest of --space, which the sampling plan's corners include) must
    fit in the memory available here at the largest shape asked for, before anything is built."""
    from hwnas.cli._options import check_archs_memory
    from hwnas.space import get_space, load_architectures

    seq_len, batch = max(config.seq_lens), max(config.batch_sizes)
    if archs_file is not None:
        check_archs_memory(load_architectures(archs_file), option=f"--archs {archs_file}:", seq_len=seq_len,
                           batch_size=batch)
    else:
        space = get_space(space_name or "small")
        check_archs_memory([space.largest], option=f"--space {space.name}: its largest architecture", seq_len=seq_len,
                           batch_size=batch)


def _dispatch(config, out, resume, cluster, until_accuracy, round_size, ray_address, ray_resource, max_retries,
              run_profile, quiet) -> None:
    from hwnas.errors import InvalidConfig

    if cluster == "ray":
        if until_accuracy is not None:
            raise InvalidConfig("--until-accuracy runs on this machine only; drop --cluster ray or --until-accuracy")
        from hwnas.cli.fleet import run_fleet_profile

        run_fleet_profile(config, out, resume, address=ray_address, resource=ray_resource, max_retries=max_retries)
        return
    if until_accuracy is not None:
        from hwnas.cli.predictor import run_adaptive_profile

        run_adaptive_profile(config, out, resume, target=until_accuracy, round_size=round_size, quiet=quiet)
        return
    summary = _run_with_progress(run_profile, config, out, resume, quiet=quiet)
    _print_summary(summary)
    if summary.stopped == "time budget":
        click.echo(f"time budget reached: {summary.remaining} task(s) left; continue with --resume", err=True)


def _replace_profile(out: str) -> None:
    """``--overwrite``: remove ``out``, but only a profile hwnas wrote (its first record is checked)."""
    from pathlib import Path

    from hwnas.profiling.store import ProfileStore, check_is_profile

    path = Path(out)
    if path.is_file():
        check_is_profile(path)
        with ProfileStore(path).lock():  # not while another process writes it
            path.unlink()


def _run_with_progress(run_profile, config, out, resume, *, quiet: bool = False):
    """Run the profile under a progress bar on stderr (none with ``quiet``). Ctrl-C is reported by
    :func:`hwnas.cli.main.interrupted_line`: completed chunks are in ``out``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    con = console(stderr=True)
    progress = Progress(
        TextColumn("[bold]profiling[/] {task.fields[device]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
        console=con,
        transient=False,
        disable=quiet,
    )
    state = {"task": None}

    def on_start(todo: int, done: int) -> None:
        if done and not quiet:
            con.print(f"resuming {out}: {done} measurement(s) already there, {todo} to go")
        state["task"] = progress.add_task("profile", total=todo, device=config.device, last="")

    def on_record(record) -> None:
        arch = f"L{record['layers']}-H{record['hidden']}-A{record['heads']}-I{record['ffn']}"
        progress.update(state["task"], advance=1, last=f"{arch}: {fmt_ms(record['latency_ms'])}")

    def on_status(message: str) -> None:
        if state["task"] is not None:
            progress.update(state["task"], last=message)

    with progress:
        return run_profile(config, out, resume=resume, on_start=on_start, on_record=on_record, on_status=on_status)


def summary_dict(summary, extra_rows=()) -> dict:
    """A profile run's summary as JSON-ready data (``profile --json``). Times in seconds, latencies in ms."""
    import math

    def number(value):
        return value if isinstance(value, (int, float)) and math.isfinite(value) else None

    refs = sorted({r["reference_ms"] for r in summary.records if r.get("reference_ms")})
    out = {"out": str(summary.out), "stopped": summary.stopped, "planned": summary.planned,
           "measured": summary.measured, "already_in_file": summary.skipped, "remaining": summary.remaining,
           "latency_ms_min": number(summary.latency_ms_min), "latency_ms_max": number(summary.latency_ms_max),
           "median_spread": number(summary.median_spread), "noisy": summary.noisy,
           "reference_ms": refs, "build_s": summary.build_s, "export_s": summary.export_s,
           "warmup_s": summary.warmup_s, "timed_s": summary.timed_s, "wall_s": summary.wall_s}
    if extra_rows:
        out["details"] = dict(extra_rows)
    return out


def _print_summary(summary, extra_rows=()) -> None:
    """The summary table on stdout, or one JSON object when the command was given ``--json``."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("as_json"):
        import json

        click.echo(json.dumps(summary_dict(summary, extra_rows), indent=2))
        return
    from rich.table import Table

    table = Table(title=f"profile summary: {summary.out}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("measured now", str(summary.measured))
    table.add_row("already in file", str(summary.skipped))
    table.add_row("left to measure", str(summary.remaining))
    if summary.measured:
        table.add_row("latency range", f"{fmt_ms(summary.latency_ms_min)} .. {fmt_ms(summary.latency_ms_max)}")
        table.add_row("median spread (IQR/median)", f"{summary.median_spread * 100:.1f}%")
        table.add_row("noisy (spread > threshold)", str(summary.noisy))
        refs = sorted({r["reference_ms"] for r in summary.records if r.get("reference_ms")})
        if refs:
            table.add_row("reference (drift probe)", f"{summary.records[0]['reference_arch']}: "
                          + (fmt_ms(refs[0]) if len(refs) == 1 else f"{fmt_ms(refs[0])} .. {fmt_ms(refs[-1])} over "
                             f"{len(refs)} chunks"))
        busy = summary.build_s + summary.export_s + summary.warmup_s + summary.timed_s
        table.add_row("time: timed inference", fmt_s(summary.timed_s))
        table.add_row("time: warm-up", fmt_s(summary.warmup_s))
        table.add_row("time: build", fmt_s(summary.build_s))
        table.add_row("time: export/compile", fmt_s(summary.export_s))
        table.add_row("time: other", fmt_s(max(0.0, summary.wall_s - busy)))
        table.add_row("wall time", fmt_s(summary.wall_s))
    for label, value in extra_rows:
        table.add_row(label, value)
    console().print(table)
