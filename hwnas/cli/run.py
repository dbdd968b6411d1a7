"""``hwnas run``: profile, fit, train, search, distill, export and verify in one command."""

from __future__ import annotations

from typing import Any

import click

from hwnas.cli._common import console, fmt_s, parse_latency_ms
from hwnas.cli._progress import ProgressBars


@click.command("run")
@click.option("--max-latency", required=True, help="Latency budget at --seq-len, batch 1 (e.g. 5ms).")
@click.option("--device", default="cpu", show_default=True, help="Device to profile and verify on.")
@click.option("--device-option", "device_option", multiple=True, metavar="KEY=VALUE",
              help="A backend's own option, repeatable (e.g. cuda_graphs=true for cuda; `hwnas devices` lists them): "
                   "profiled with it, and the student is measured with it.")
@click.option("--name", default=None, help="Run folder name (default <device>-<budget>ms).")
@click.option("--work-dir", default="hwnas-runs", show_default=True, help="Folder holding the runs.")
@click.option("--space", default=None, help="Search space (default: tiny for budgets up to 8 ms, else small).")
@click.option("--predictor", default=None, help="Reuse this predictor bundle instead of profiling and fitting.")
@click.option("--supernet", default=None, help="Reuse this supernet folder instead of training one.")
@click.option("--task", default=None, help="Task data (default: the embedded SST-2 sample).")
@click.option("--eval", "eval_", default=None, help="Evaluation data (default: embedded SST-2 dev sample).")
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads for profiling and measurement.")
@click.option("--seq-len", type=int, default=128, show_default=True,
              help="Sequence length the budget holds at: profiled, searched and verified at this length.")
@click.option("--strict", is_flag=True, help="Refuse a host-bound predictor profiled on another host (default: warn).")
@click.option("--samples", type=int, default=40, show_default=True, help="Architectures to profile.")
@click.option("--supernet-steps", type=int, default=150, show_default=True)
@click.option("--evaluations", type=int, default=40, show_default=True, help="Accuracy evaluations of the search.")
@click.option("--strategy", type=click.Choice(["bo", "evolution", "random"]), default=None,
              help="Search strategy. [default: bo; random with --quick]")
@click.option("--teacher-steps", type=int, default=200, show_default=True)
@click.option("--distill-steps", type=int, default=200, show_default=True)
@click.option("--quick", is_flag=True, help="A tiny configuration that runs every stage in about a minute (smoke test).")
@click.option("--quiet", is_flag=True, help="No progress display (and no library log lines).")
@click.option("--overwrite", is_flag=True, help="Replace the run folder (only one hwnas wrote) instead of reusing it.")
@click.option("--resume", is_flag=True, help="Continue the run folder (the default: every finished stage is reused).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary (summary.json) as JSON.")
def run(max_latency: str, device: str, device_option: tuple[str, ...], name: str | None, work_dir: str,
        space: str | None, predictor: str | None,
        supernet: str | None, task: str | None, eval_: str | None, threads: int, seq_len: int, strict: bool,
        samples: int, supernet_steps: int, evaluations: int, strategy: str | None, teacher_steps: int,
        distill_steps: int, quick: bool, quiet: bool, overwrite: bool, resume: bool, as_json: bool) -> None:
    """Profile, fit a predictor, train a supernet, search, distill, export and verify: one command.

    Every stage writes under WORK_DIR/NAME, and a second run reuses what is there.
    """
    from hwnas.errors import InvalidConfig
    from hwnas.pipeline import RunConfig, estimate_seconds, quick_config, run_pipeline
    from hwnas.space import get_space

    budget = parse_latency_ms(max_latency, what="--max-latency")
    if space is not None:
        get_space(space)  # a bad name fails here, before anything runs
    from hwnas.cli._options import check_seq_len, check_threads, explicit, require_int

    check_seq_len(seq_len, "--seq-len")
    check_threads(threads)
    for option, value in (("--samples", samples), ("--supernet-steps", supernet_steps), ("--evaluations", evaluations),
                          ("--teacher-steps", teacher_steps), ("--distill-steps", distill_steps)):
        require_int(value, option)
    from hwnas.devices.registry import parse_device_options

    device_options = parse_device_options(device, device_option)
    ctx = click.get_current_context()
    common = dict(device=device, device_options=device_options, name=name, work_dir=work_dir, predictor=predictor,
                  supernet=supernet, task=task,
                  eval=eval_, threads=threads, seq_len=seq_len, strict=strict,
                  **({"strategy": strategy} if strategy else {}))
    if quick:
        # --quick shrinks every stage; sizes typed on the command line still win over it
        typed = {field: value for name, field, value in (
            ("samples", "profile_samples", samples), ("supernet_steps", "supernet_steps", supernet_steps),
            ("evaluations", "search_evaluations", evaluations), ("teacher_steps", "teacher_steps", teacher_steps),
            ("distill_steps", "distill_steps", distill_steps)) if explicit(ctx, name)}
        config = quick_config(budget, **common, **typed, **({"space": space} if space else {}))
    else:
        config = RunConfig(max_latency_ms=budget, space=space, profile_samples=samples, supernet_steps=supernet_steps,
                           search_evaluations=evaluations, teacher_steps=teacher_steps, distill_steps=distill_steps,
                           **common)
    from hwnas.outputs import check_output_folder

    if resume and overwrite:
        raise InvalidConfig("give one of --resume (continue the run) and --overwrite (replace it)")
    check_output_folder(config.folder, kind="run", option="--work-dir/--name")
    from hwnas.cli._options import check_inputs_early

    check_inputs_early(predictor=predictor, supernet=supernet, data=(("--task", task), ("--eval", eval_)))
    from hwnas.devices.registry import create_device

    create_device(device, threads=threads, **device_options)  # unknown or unavailable devices fail before anything runs
    est = estimate_seconds(config)
    out = console(stderr=as_json or quiet)
    todo = ", ".join(f"{k} ~{fmt_s(v)}" for k, v in est.items() if v and k != "fixed")
    out.print(f"hwnas run: budget {budget:g} ms on {device} ({threads} thread(s)), space {config.space_name}, "
              f"folder {config.folder}")
    out.print(f"this will take roughly {fmt_s(sum(est.values()))} on an idle 2-core machine, longer on a busy one ({todo or 'everything reused'})")
    from hwnas.cli._common import one_line_warnings
    from hwnas.predictors.host import HostMismatchWarning

    if overwrite:
        from hwnas.cli._options import replace_owned_folder

        replace_owned_folder(config.folder, kind="run", option="--work-dir/--name")
    with ProgressBars(quiet or as_json, finishes={"distill": ("teacher", "agnostic")}) as bars, \
            one_line_warnings(HostMismatchWarning):
        summary = run_pipeline(config, on_progress=bars.event, on_status=bars.status)
    if as_json:
        import json

        click.echo(json.dumps(summary.to_dict(), indent=2, default=str))
        return
    _print_summary(summary)
    from pathlib import Path

    if (Path(summary.folder) / "report.html").is_file():
        console().print(f"report: {Path(summary.folder) / 'report.html'} (open it in a browser)")


def _print_summary(summary: Any) -> None:
    from rich.table import Table

    from hwnas.cli._common import fmt_ms

    table = Table(title=f"hwnas run: {summary.folder}")
    for col in ("stage", "status", "took", "output", "result"):
        table.add_column(col)
    for s in summary.stages:
        table.add_row(s.name, s.status, fmt_s(s.seconds), s.output, s.detail)
    console().print(table)
    r = summary.report or {}
    m = r.get("measured_latency") or {}
    if r:
        lines = [
            f"student {r['arch_key']}: {r['metric']} {r['student_score']:.4f} (teacher {r['teacher_score']:.4f}, "
            f"retained {r['retained']:.1%}), {r['parameters']:,} parameters",
        ]
        ft = (r.get("teacher") or {}).get("fine_tune") or {}
        if ft.get("steps") and not ft.get("epochs"):  # a short teacher: say what a full one gives
            from hwnas.distill.teacher import full_teacher_note

            lines.append(full_teacher_note(int(ft["steps"])))
        v = summary.verification
        if m and v:
            lines.append(f"verified on {v['device']} ({v['threads']} thread(s), {v['dtype']}, seq {v['seq_len']}, "
                         f"batch {v['batch_size']}, {v['clock']} clock): {v['measured']}")
            lines.extend(f"  {line}" for line in v["verdict"])
            lines.append(f"  profiled encoder {fmt_ms(v['encoder_ms'])} (deployed/profiled x{v['deployed_vs_profiled']:.2f}), "
                         f"teacher encoder {fmt_ms(m['teacher']['latency_ms'])}, speed-up {m['speedup']:.2f}x")
        lines.append(f"load it with AutoModelForSequenceClassification.from_pretrained('{summary.folder}/student'); "
                     f"ONNX: {summary.folder}/student/model.onnx")
        for line in lines:
            console().print(line)
    console().print(f"total {fmt_s(summary.wall_s)}")
