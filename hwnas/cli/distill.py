"""``hwnas distill``: train a searched architecture from the teacher and export it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from hwnas.cli._common import console, fmt_ms, fmt_s
from hwnas.cli._options import list_option

AUTO = "auto"  # hwnas.distill.recipes.AUTO; that module imports torch, so it is imported only when a command runs


def _typed(fields: dict[str, Any], temperature: float | None, schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe settings typed on the command line (they override a recipe's), with ``temperature`` and the
    loss-weight ``schedule`` when typed."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    typed = {name: value for name, value in fields.items()
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    if temperature is not None and "losses" not in typed:
        typed["temperature"] = temperature
    if schedule is not None and "losses" not in typed:
        typed["weight_schedule"] = schedule
    return typed


def _read_experience(table: str | None) -> list[dict[str, Any]]:
    """The shipped seed runs and the user's table (refused with one line when corrupt or from a newer hwnas)."""
    from hwnas.distill.experience import SEED_TABLE, read_table

    rows = read_table(SEED_TABLE) if SEED_TABLE.is_file() else []
    return rows + (read_table(table) if table is not None else [])


def _features(config: Any, known: dict[str, float] | None = None) -> tuple[dict[str, float], Any]:
    """Dataset features of ``config.task`` (as the AutoDistiller sees them; ``known`` when computed already) and
    the training data."""
    from hwnas.distill.api import load_data
    from hwnas.distill.auto import dataset_features

    train_data, _, _ = load_data(config)
    return (known if known is not None else dataset_features(train_data, seed=0)), train_data


def _record(table: str, config: Any, report: dict[str, Any], features: dict[str, float] | None) -> None:
    """Append this run to the experience table; a failure to write it warns and keeps the student."""
    from hwnas.distill.auto import settings_record, task_id
    from hwnas.distill.experience import append_record, make_record
    from hwnas.errors import HwnasError

    try:
        feats, data = _features(config, features)
        rec = make_record(recipe_name=(report.get("recipe") or {}).get("name") or config.recipe or "default",
                          settings=settings_record(config), features=feats, arch=report["arch"],
                          metric=report["metric"], student=report["student_score"], teacher=report["teacher_score"],
                          steps=config.steps, task_id=task_id(data), source=str(config.task))
        append_record(table, rec)
    except (OSError, HwnasError) as exc:
        click.echo(f"warning: could not append this run to the experience table {table}: {exc}", err=True)


def print_report(report: dict[str, Any], out: str) -> None:
    from rich.table import Table

    table = Table(title=f"student {report['arch_key']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    metric = report["metric"]
    table.add_row("parameters", f"{report['parameters']:,} (teacher {report['teacher']['parameters']:,})")
    table.add_row("initialised", report["init"])
    rec = report.get("recipe") or {}
    if rec:
        changed = ", ".join(sorted(rec.get("overrides") or {}))
        table.add_row("recipe", rec["name"] + (f" (changed: {changed})" if changed else ""))
    losses = report.get("losses") or {}
    if losses.get("weight_schedule"):
        table.add_row("loss-weight schedule", _schedule_line(losses["weights"], losses["weight_schedule"]))
    ft = (report.get("teacher") or {}).get("fine_tune")
    if ft:
        table.add_row("teacher fine-tune", _fine_tune_line(ft, report["teacher"].get("reused", False)))
    s, t = report["student_score"], report["teacher_score"]
    table.add_row(f"{metric}", f"{s:.4f} (teacher {t:.4f}, retained {report['retained']:.1%})" if t else f"{s:.4f}")
    pred = report.get("predicted_latency") or {}
    if pred.get("latency_ms") is not None:
        table.add_row("predicted latency", f"{fmt_ms(pred['latency_ms'])} (upper {fmt_ms(pred.get('latency_upper_ms') or float('nan'))})")
    m = report.get("measured_latency")
    if m:
        table.add_row("measured on", f"{m['device']}, {m['threads']} thread(s), {m['dtype']}, seq {m['seq_len']}, "
                      f"batch {m['batch_size']}, {m['clock']} clock")
        table.add_row("measured latency", f"{fmt_ms(m['student']['latency_ms'])}: {m['student']['measured']}")
        table.add_row("profiled encoder", f"{fmt_ms(m['student_encoder']['latency_ms'])} (deployed/profiled "
                      f"x{m['deployed_vs_profiled']:.2f}); teacher encoder {fmt_ms(m['teacher']['latency_ms'])} "
                      f"-> {m['speedup']:.2f}x")
        for i, line in enumerate(m.get("verdict") or [m["drift"]["note"]]):
            table.add_row("verdict" if i == 0 else "", line)
    ex = report["exports"]
    table.add_row("exports", f"save_pretrained (max diff {ex['huggingface']['max_abs_diff']:.1e}); "
                  f"model.onnx (max diff {ex['onnx']['max_abs_diff']:.1e} <= {ex['onnx']['atol']:.0e})")
    table.add_row("written", f"{out}/ ({', '.join(report['files'])})")
    took = fmt_s(report["wall_s"])
    if report.get("cpu_s") is not None:  # reports written before the CPU ledger have none
        attempts = report.get("cpu_attempts") or 1
        took += f" ({fmt_s(report['cpu_s'])} CPU" + (f" over {attempts} attempts)" if attempts > 1 else ")")
    table.add_row("took", took)
    console().print(table)


def _schedule_line(weights: dict[str, float], schedule: dict[str, dict[str, Any]]) -> str:
    """``hidden linear 1->0, logits step 0.5->1 at 30%`` for the report table."""
    parts = []
    for name, s in schedule.items():
        w = weights.get(name, 0.0)
        start, end = s.get("start", w), s.get("end", w)
        text = f"{name} {s['shape']} {start:g}" + ("" if s["shape"] == "constant" else f"->{end:g}")
        parts.append(text + (f" at {s['at']:.0%}" if s["shape"] == "step" else ""))
    return ", ".join(parts)


def _fine_tune_line(ft: dict[str, Any], reused: bool) -> str:
    """``1,894 steps (1 epoch), best at step 1,800, 31m 2s`` for the report table."""
    steps = ft.get("steps") or 0
    parts = [f"{steps:,} steps" + (f" ({ft['epochs']} epoch{'s' if ft['epochs'] != 1 else ''})" if ft.get("epochs") else "")]
    if ft.get("eval_every"):
        parts.append(f"evaluated every {ft['eval_every']}, best at step {ft.get('best_step')}")
    if ft.get("train_s") is not None:
        parts.append(f"took {fmt_s(ft['train_s'])}" + (" (cached, reused)" if reused else ""))
    return ", ".join(parts)


@click.command("distill")
@click.option("--arch", required=True, help="Architecture (layers=4,hidden=256,heads=4,ffn=1024) or a search winner.json.")
@click.option("--task", required=True, help="Training data: .tsv/.csv/.jsonl file, or a datasets name such as glue/sst2.")
@click.option("--eval", "eval_", default=None, help="Evaluation data (default: hold out the last 10%% of --task, at most 1000).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder of the student.")
@click.option("--teacher", default="default", show_default=True,
              help="'default' (packaged all-MiniLM-L6-v2), a local model folder, or a hub name.")
@click.option("--supernet", default=None, help="Supernet folder; the student starts from its weights.")
@click.option("--init", type=click.Choice(["teacher", "random"]), default="teacher", show_default=True,
              help="Without --supernet: slice the teacher's leading layers and units, or start from random weights.")
@click.option("--losses", default="logits=1,hidden=1,attention=1", show_default=True,
              help="Loss weights as name=weight,... or a JSON/YAML loss config file. Names: task, logits, hidden, "
                   "attention, value_relation, mi_alpha.")
@click.option("--temperature", type=float, default=None, help="Logits KD temperature (overrides the config file; default 2).")
@list_option("--weight-schedule", metavar="LOSS=SHAPE[:START->END][@AT]",
             help="Loss-weight schedules over the training steps, e.g. hidden=linear:1->0,logits=cosine:0.5->1. "
                  "Shapes: constant, linear, cosine, step (START before AT, a fraction of training, END after); "
                  "START/END default to the loss's weight, which must be > 0. Overrides the recipe's schedules; "
                  "'none' removes them.")
@click.option("--steps", type=int, default=600, show_default=True, help="Task-distillation steps.")
@click.option("--agnostic-steps", type=int, default=0, show_default=True, help="Task-agnostic distillation steps first.")
@click.option("--teacher-epochs", type=int, default=1, show_default=True,
              help="Fine-tune the task teacher for this many whole passes over --task (one epoch: examples // "
                   "batch size steps; length-bucketed batches, 6%% warm-up, linear decay).")
@click.option("--teacher-steps", type=int, default=None,
              help="Fine-tuning steps of the task teacher instead of --teacher-epochs.")
@click.option("--teacher-seed", type=int, default=None,
              help="Seed of the teacher's fine-tuning [default: --seed]; fix it to repeat students against one teacher.")
@click.option("--teacher-eval-every", type=int, default=None,
              help="Evaluate the teacher every N fine-tuning steps and keep the best weights (0: at the end only) "
                   "[default: 200 with --teacher-epochs, 0 with --teacher-steps].")
@click.option("--recipe", default=None,
              help="A named distillation recipe (default, gt-v1, logits-only, minilm, two-stage, augmented, annealed, "
                   "scheduled, mi-alpha), 'auto' (the AutoDistiller recommends one from the dataset and past runs), or a "
                   ".json/.yaml recipe file. Options typed here override its settings.")
@click.option("--experience", default=None, type=click.Path(dir_okay=False),
              help="Experience table this run is appended to and --recipe auto learns from "
                   "[default: $HWNAS_HOME/experience.jsonl, else ~/.cache/hwnas/experience.jsonl].")
@click.option("--no-experience", is_flag=True,
              help="Neither read nor append the experience table (--recipe auto then learns from the shipped runs only).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--max-len", type=int, default=128, show_default=True, help="Tokens per example.")
@click.option("--limit", type=int, default=None, help="Use only the first N training examples.")
@click.option("--eval-limit", type=int, default=None, help="Use only the first N evaluation examples.")
@click.option("--augment", type=int, default=0, show_default=True, help="Noisy copies of each training example.")
@click.option("--augment-method", type=click.Choice(["edit", "mlm"]), default="edit", show_default=True,
              help="How --augment makes a copy: word deletions and swaps, or masked-LM word replacement (the "
                   "teacher's MLM head where its folder has one, random vocabulary words otherwise).")
@click.option("--text-column", default=None, help="Column of the (first) sentence; detected when omitted.")
@click.option("--pair-column", default=None, help="Column of the second sentence; detected when omitted.")
@click.option("--label-column", default=None, help="Column of the label; detected when omitted.")
@click.option("--predictor", default=None, help="Predictor bundle for the predicted latency in the report.")
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads for latency measurement.")
@click.option("--device", "device", default=None,
              help="Device to measure the student on (default: the winner file's, else the predictor's, else cpu).")
@click.option("--seq-len", "latency_seq_len", type=int, default=None,
              help="Sequence length to measure at (default: the winner file's, else 128).")
@click.option("--latency-batch-size", type=int, default=None,
              help="Batch size to measure at (default: the winner file's, else 1).")
@click.option("--strict", is_flag=True, help="Refuse a host-bound predictor profiled on another host (default: warn).")
@click.option("--no-measure", is_flag=True, help="Skip measuring latency after training.")
@click.option("--mixed-precision", type=click.Choice(["auto", "no", "bf16", "fp16"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache-dir", default=None, help="Where fine-tuned teachers are cached (default: next to --out, in teachers/).")
@click.option("--overwrite", is_flag=True, help="Replace a finished or unfinished student with other settings in --out.")
@click.option("--resume", is_flag=True,
              help="Continue the unfinished student in --out (distill also does so without it, when the settings match).")
@click.option("--json", "as_json", is_flag=True, help="Print the report (report.json) as JSON instead of a table.")
@click.option("--quiet", is_flag=True, help="No progress display.")
def distill(arch: str, task: str, eval_: str | None, out: str, teacher: str, supernet: str | None, init: str,
            losses: str, temperature: float | None, weight_schedule: tuple[str, ...], steps: int, agnostic_steps: int, teacher_epochs: int,
            teacher_steps: int | None, teacher_seed: int | None, teacher_eval_every: int | None, recipe: str | None,
            experience: str | None, no_experience: bool,
            batch_size: int, lr: float, max_len: int, limit: int | None, eval_limit: int | None, augment: int, augment_method: str,
            text_column: str | None, pair_column: str | None, label_column: str | None, predictor: str | None,
            threads: int, device: str | None, latency_seq_len: int | None, latency_batch_size: int | None,
            strict: bool, no_measure: bool, mixed_precision: str, seed: int, cache_dir: str | None,
            overwrite: bool, resume: bool, as_json: bool, quiet: bool) -> None:
    """Distill ARCH from the teacher on a task, export it (Hugging Face folder + ONNX) and report.

    The teacher is first fine-tuned on the task for a whole epoch (cached and
    reused), the student starts from the supernet's weights (or slices of the
    teacher), is trained with the chosen recipe, exported, verified and timed.
    The run is appended to the experience table the AutoDistiller learns from.
    """
    from dataclasses import replace

    from hwnas.errors import InvalidConfig
    from hwnas.outputs import check_not_input, check_output_folder, remove_if_unfinished

    from hwnas.cli._options import (arch_from_option, check_fits_teacher, check_inputs_early, check_memory, check_seq_len,
                                    check_threads, require_int, split_list, teacher_max_positions)

    if resume and overwrite:
        raise InvalidConfig("give one of --resume (continue --out) and --overwrite (replace it)")
    check_output_folder(out, kind="distill")  # before anything is loaded or trained
    student = arch_from_option(arch)
    for option, value, least in (("--steps", steps, 1), ("--batch-size", batch_size, 1), ("--agnostic-steps", agnostic_steps, 0),
                                 ("--teacher-steps", teacher_steps, 1), ("--teacher-epochs", teacher_epochs, 1),
                                 ("--teacher-eval-every", teacher_eval_every, 0),
                                 ("--augment", augment, 0), ("--limit", limit, 1), ("--eval-limit", eval_limit, 1),
                                 ("--latency-batch-size", latency_batch_size, 1)):
        if value is not None:
            require_int(value, option, minimum=least)
    if not (math.isfinite(lr) and lr > 0):
        raise InvalidConfig(f"--lr must be a positive finite number; got {lr}")
    check_seq_len(max_len, "--max-len", max_positions=teacher_max_positions(teacher))
    check_seq_len(latency_seq_len, "--seq-len")
    check_threads(threads)
    if init == "teacher" and supernet is None:
        check_fits_teacher(student, teacher)
    check_memory(student, option="--arch", seq_len=max_len, batch_size=batch_size, training=True)
    check_not_input(out, [("--task", task), ("--eval", eval_), ("--arch", arch), ("--predictor", predictor),
                          ("--supernet", supernet), ("--teacher", teacher)])
    check_inputs_early(predictor=predictor, supernet=supernet, teacher=teacher, data=(("--task", task), ("--eval", eval_)))

    from hwnas.distill.api import DistillConfig, distill as run_distill
    from hwnas.distill.experience import default_table
    from hwnas.distill.losses import LossConfig
    from hwnas.distill.recipes import apply_recipe

    loss_config = LossConfig.parse(losses)
    if temperature is not None:
        loss_config = replace(loss_config, temperature=temperature)
    schedule = None
    if weight_schedule:
        from click.core import ParameterSource

        from hwnas.distill.losses import parse_weight_schedules

        schedule = parse_weight_schedules(split_list(weight_schedule))
        losses_typed = click.get_current_context().get_parameter_source("losses") in (ParameterSource.COMMANDLINE,
                                                                                      ParameterSource.ENVIRONMENT)
        if recipe == AUTO and not losses_typed:
            raise InvalidConfig("--weight-schedule with --recipe auto needs --losses too (the recommended recipe "
                                "decides the losses otherwise); or name a recipe")
        if recipe is None or losses_typed:  # else the recipe's losses take it (apply_recipe)
            loss_config = replace(loss_config, weight_schedule=schedule)
    recipe_fields = {"losses": loss_config, "steps": steps, "lr": lr, "batch_size": batch_size, "max_len": max_len,
                     "agnostic_steps": agnostic_steps, "augment": augment, "augment_method": augment_method,
                     "init": init, "teacher_steps": teacher_steps, "teacher_epochs": teacher_epochs,
                     "teacher_eval_every": teacher_eval_every}
    typed = _typed(recipe_fields, temperature, schedule)
    table = None if no_experience else (experience or str(default_table()))
    rows = _read_experience(table)  # a corrupt or newer table is refused before anything is trained
    if recipe is not None and recipe != AUTO:
        recipe_fields = apply_recipe(recipe, typed)
    common = dict(arch=arch, task=task, eval=eval_, teacher=teacher, supernet=supernet, teacher_seed=teacher_seed,
                  limit=limit, eval_limit=eval_limit, seed=seed, mixed_precision=mixed_precision, predictor=predictor,
                  measure=not no_measure, threads=threads, cache_dir=cache_dir, text_col=text_column,
                  text_pair_col=pair_column, label_col=label_column, device=device, seq_len=latency_seq_len,
                  latency_batch_size=latency_batch_size, strict=strict)
    config = DistillConfig(**common, **recipe_fields)
    features = recommendation = None
    if recipe == AUTO:
        from hwnas.distill.auto import recommend

        features, _ = _features(config)
        recommendation = recommend(features, student.as_dict(), rows, overrides=typed, seed=seed)
        click.echo(f"AutoDistiller: recipe {recommendation.recipe} ({recommendation.reason})", err=True)
        config = DistillConfig(**common, **apply_recipe(recommendation.recipe, typed))
    from hwnas.cli._common import one_line_warnings
    from hwnas.cli._progress import ProgressBars
    from hwnas.predictors.host import HostMismatchWarning
    from hwnas.training.processes import process_state

    main, _ = process_state()
    report_file = Path(out) / "report.json"
    before = report_file.stat().st_mtime_ns if report_file.is_file() else None
    with remove_if_unfinished(out), ProgressBars(quiet or as_json or not main) as bars, \
            one_line_warnings(HostMismatchWarning):
        report = run_distill(config, out, on_status=bars.status, on_progress=bars.event, overwrite=overwrite)
    if main:
        from hwnas.plots.training import write_distill_plot

        if recommendation is not None:
            recommendation.save(out)
        reused = before is not None and report_file.stat().st_mtime_ns == before
        if table is not None and not reused:  # a finished folder returned as it was is not a new run
            _record(table, config, report, features)

        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
            click.echo(f"curves: {write_distill_plot(out)}", err=True)
            return
        print_report(report, out)
        click.echo(f"curves: {write_distill_plot(out)}")
