"""``hwnas supernet``: train weight-sharing supernets, score and extract sub-networks."""

from __future__ import annotations

import math
from pathlib import Path

import click

from hwnas.cli._common import console, echo_kv, fmt_s
from hwnas.cli._options import list_option
from hwnas.errors import InvalidArchitecture, InvalidConfig


@click.group("supernet")
def supernet() -> None:
    """Train weight-sharing supernets (one per sub-space), score and extract sub-networks."""


@supernet.command("train")
@click.option("--teacher", default="default", show_default=True,
              help="'default' (packaged all-MiniLM-L6-v2), a local model folder, or a hub name.")
@list_option("--space", "spaces", default="small", show_default=True,
             help="Space names or files, one supernet per space; 'all' = tiny, small and base (AutoDistil's three "
                  "sub-spaces).")
@click.option("--data", default=None, help="Text file, TSV/CSV/JSONL with a text column, or a datasets name. "
              "Default: the embedded SST-2 sentences.")
@click.option("--text-column", default=None, help="Column holding the text (default: sentence or text).")
@click.option("--steps", type=int, default=2000, show_default=True, help="Total optimizer steps.")
@click.option("--batch-size", type=int, default=32, show_default=True, help="Global batch in sequences.")
@click.option("--max-len", "seq_len", type=int, default=128, show_default=True,
              help="Training tokens per row (longer rows are cut).")
@click.option("--seq-len", "seq_len_old", type=int, default=None, hidden=True, help="Deprecated spelling of --max-len.")
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Peak learning rate (AdamW).")
@click.option("--random-subnets", type=int, default=2, show_default=True,
              help="Random sub-networks per step besides the largest and the smallest.")
@click.option("--relation-heads", type=int, default=None, help="MiniLM-v2 relation heads (default: derived).")
@click.option("--hidden-weight", type=float, default=0.0, show_default=True,
              help="Weight of the optional hidden-state relation term.")
@click.option("--heldout", type=int, default=128, show_default=True, help="Rows kept out for the held-out loss.")
@click.option("--max-rows", type=int, default=None, help="Use at most this many tokenised rows.")
@click.option("--freeze-embeddings", is_flag=True, help="Keep the teacher's word embeddings fixed (faster).")
@click.option("--checkpoint-every", type=int, default=50, show_default=True, help="Steps between checkpoints.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=None, help="Torch CPU threads.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Supernet folder; with several spaces, the parent folder of one folder per space.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --out.")
@click.option("--overwrite", is_flag=True, help="Replace the supernet in --out (only a folder hwnas wrote).")
@click.option("--quiet", is_flag=True, help="No progress display (the summary is still printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object ({\"supernets\": [...]}).")
@click.option("--mixture", type=click.Choice(["none", "layer", "neuron"]), default="none", show_default=True,
              help="Mixture-of-Supernets: expert weights mixed by an architecture router, one weight per expert "
                   "(layer) or per expert and output neuron (neuron); none is plain weight sharing.")
@click.option("--experts", type=int, default=None, help="Expert copies per mixed matrix with --mixture (2-16) [default: 2].")
@click.option("--router-hidden", type=int, default=128, show_default=True, help="Hidden width of the mixture's router.")
@click.option("--mix-attention", is_flag=True, help="With --mixture: also mix the attention projections (FFN only by default).")
@click.option("--router-lr-mult", type=float, default=None,
              help="With --mixture: the router's learning rate is --lr times this (0-1000) [default: 1].")
@click.option("--router-init", type=float, default=None,
              help="With --mixture: spread of the router's output layer at the start (0-100; 0 = uniform mixing for "
                   "every architecture, which keeps the experts identical) [default: 3].")
@click.option("--router-temperature", type=float, default=None,
              help="With --mixture: softmax temperature of the mixing weights (0.01-100; below 1 = sharper) [default: 1].")
@click.option("--expert-init", type=click.Choice(["noise", "random"]), default=None,
              help="With --mixture: extra experts start as the teacher's slice plus noise, or random [default: noise].")
@click.option("--expert-noise", type=float, default=None,
              help="With --mixture: that noise's (or random start's) scale, times each tensor's std (0-10) "
                   "[default: 0.001].")
def train_cmd(teacher, spaces, data, text_column, steps, batch_size, seq_len, seq_len_old, lr, random_subnets,
              relation_heads, hidden_weight, heldout, max_rows, freeze_embeddings, checkpoint_every, seed, threads, out,
              resume, overwrite, quiet, as_json, mixture, experts, router_hidden, mix_attention, router_lr_mult,
              router_init, router_temperature, expert_init, expert_noise) -> None:
    """Distill the teacher into one supernet per space (sandwich rule, MiniLM-v2 relations).

    Runs data-parallel unchanged under torchrun or accelerate launch.
    """
    import os

    from hwnas.cli._progress import ProgressBars
    from hwnas.outputs import check_output_folder
    from hwnas.space import get_space
    from hwnas.supernet.train import TrainConfig, train_supernet

    mos = {"router_lr_mult": router_lr_mult, "router_init": router_init, "router_temperature": router_temperature,
           "expert_init": expert_init, "expert_noise": expert_noise}
    if mixture == "none" and (experts is not None or mix_attention or any(v is not None for v in mos.values())):
        given = [f"--{k.replace('_', '-')}" for k, v in {"experts": experts, **mos}.items() if v is not None]
        given += ["--mix-attention"] if mix_attention else []
        raise InvalidConfig(f"{', '.join(given)}: --experts, --mix-attention, --router-* and --expert-* need "
                            "--mixture layer or --mixture neuron")
    mos = {k: v for k, v in mos.items() if v is not None}  # the rest: TrainConfig's defaults
    if heldout < 1:
        raise InvalidConfig(f"--heldout must be an integer >= 1 (rows for the held-out loss that scores students); got {heldout}")
    from hwnas.cli._options import split_list

    names = [n for name in split_list(spaces) for n in (("tiny", "small", "base") if name == "all" else (name,))]
    if not names:
        raise InvalidConfig("--space must name at least one space (e.g. tiny,small)")
    parsed = [get_space(n) for n in names]
    if len({s.name for s in parsed}) != len(parsed):
        raise InvalidConfig(f"--space names a space twice: {', '.join(names)}")
    main = int(os.environ.get("RANK", "0")) == 0
    from hwnas.outputs import writer_guard

    from hwnas.cli._options import check_memory, check_seq_len, check_threads, require_int, teacher_max_positions

    for option, value, least in (("--steps", steps, 1), ("--batch-size", batch_size, 1), ("--random-subnets", random_subnets, 0),
                                 ("--checkpoint-every", checkpoint_every, 1), ("--max-rows", max_rows, 1),
                                 ("--relation-heads", relation_heads, 1), ("--router-hidden", router_hidden, 1)):
        if value is not None:
            require_int(value, option, minimum=least)
    if not (math.isfinite(lr) and lr > 0):
        raise InvalidConfig(f"--lr must be a positive finite number; got {lr}")
    len_option = "--max-len"
    if seq_len_old is not None:
        from hwnas.cli._options import deprecated

        deprecated("--seq-len", "--max-len (training tokens; --seq-len is the latency shape elsewhere)")
        seq_len, len_option = seq_len_old, "--seq-len"
    if resume and overwrite:
        raise InvalidConfig("give one of --resume (continue --out) and --overwrite (replace it)")
    check_seq_len(seq_len, len_option, max_positions=teacher_max_positions(teacher), what="training tokens per row")
    check_threads(threads)
    if data is not None:
        from hwnas.cli._options import check_inputs_early

        check_inputs_early(teacher=teacher, data=(("--data", data),))
    for space in parsed:  # every folder is checked before the first one is trained
        check_output_folder(out if len(parsed) == 1 else out / space.name, kind="supernet")
        check_memory(space.largest, option=f"--space {space.name}: its largest architecture", seq_len=seq_len,
                     batch_size=batch_size, training=True)
    results = []
    for space in parsed:
        folder = out if len(parsed) == 1 else out / space.name
        cfg = TrainConfig(
            space=space, out=str(folder), teacher=teacher, data=data, text_column=text_column, steps=steps,
            batch_size=batch_size, seq_len=seq_len, lr=lr, random_subnets=random_subnets, relation_heads=relation_heads,
            hidden_weight=hidden_weight, heldout=heldout, max_rows=max_rows, train_embeddings=not freeze_embeddings,
            checkpoint_every=checkpoint_every, seed=seed, threads=threads,
            cache_dir=str(out / ".cache"), mixture=mixture, experts=experts if experts is not None else 2,
            router_hidden=router_hidden, mix_attention=mix_attention, **mos,
        )
        with writer_guard(folder, kind="supernet", main=main, replace=overwrite,
                          hint="wait for that training to finish, or give another --out"), \
                ProgressBars(not main or quiet, label=space.name) as bars:
            result = train_supernet(cfg, resume=resume, on_progress=bars.event, on_status=bars.status)
        if main and as_json:
            from hwnas.plots.training import write_supernet_plot

            results.append(_result_dict(result, folder, space.name, write_supernet_plot(folder)))
        elif main:
            first = f"{result.first_loss:.4f}" if result.first_loss is not None else "-"
            last = f"{result.last_loss:.4f}" if result.last_loss is not None else "-"
            echo_kv([
                ("supernet", str(folder)),
                ("space", space.name),
                ("steps", f"{result.steps_done} ({result.steps_run} this run" + (f", resumed from {result.resumed_from})" if result.resumed_from is not None else ")")),
                ("wall", fmt_s(result.wall_s)),
                ("samples/s", f"{result.samples_per_s:.2f}"),
                ("loss", f"{first} -> {last} (mean over the sandwich)"),
            ])
            from hwnas.plots.training import write_supernet_plot

            click.echo(f"curves: {write_supernet_plot(folder)}")
    if main and as_json:
        import json

        click.echo(json.dumps({"supernets": results}, indent=2))


def _result_dict(result, folder: Path, space: str, curves) -> dict:
    """One trained supernet as JSON-ready data (``supernet train --json``)."""
    return {"supernet": str(folder), "space": space, "steps_done": result.steps_done, "steps_run": result.steps_run,
            "resumed_from": result.resumed_from, "wall_s": result.wall_s, "total_wall_s": result.total_wall_s,
            "samples_per_s": result.samples_per_s, "first_loss": result.first_loss, "last_loss": result.last_loss,
            "curves": str(curves)}


def _collect_archs(arch: tuple[str, ...], archs_file: Path | None):
    from hwnas.space import Architecture, load_architectures

    out = [Architecture.parse(a) for a in arch]
    if archs_file is not None:
        out += load_architectures(archs_file)
    if not out:
        raise InvalidArchitecture("give at least one --arch layers=..,hidden=..,heads=..,ffn=.. or --archs FILE")
    return out


@supernet.command("score")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--arch", multiple=True, help="layers=4,hidden=256,heads=4,ffn=1024 (repeatable).")
@click.option("--archs", "archs_file", type=click.Path(path_type=Path), default=None, help="File of architectures.")
@click.option("--metric", type=click.Choice(["loss", "proxy", "both"]), default="loss", show_default=True,
              help="loss: minus the held-out distillation loss; proxy: linear-probe accuracy on SST-2.")
@click.option("--no-cache", is_flag=True, help="Do not read or write the score cache.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def score_cmd(path, arch, archs_file, metric, no_cache, as_json) -> None:
    """Score architectures with a supernet (higher is better): the estimate search uses."""
    import json

    from hwnas.supernet import load_supernet
    from hwnas.supernet.estimate import SupernetEstimator

    sn = load_supernet(path)
    archs = _collect_archs(arch, archs_file)
    for a in archs:
        sn.validate(a)
    metrics = ["loss", "proxy"] if metric == "both" else [metric]
    scores = {m: SupernetEstimator(sn, m, cache=False if no_cache else None).score(archs) for m in metrics}
    if as_json:
        for i, a in enumerate(archs):
            click.echo(json.dumps({"arch": a.as_dict(), **{m: float(scores[m][i]) for m in metrics}}))
        return
    from rich.table import Table

    table = Table(title=f"supernet {sn.space.name} ({sn.steps_done} steps, teacher {sn.teacher})")
    table.add_column("architecture")
    for m in metrics:
        table.add_column("-loss" if m == "loss" else "proxy acc", justify="right")
    for i, a in enumerate(archs):
        table.add_row(a.key, *(f"{scores[m][i]:.4f}" for m in metrics))
    console().print(table)


@supernet.command("extract")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--arch", required=True, help="layers=4,hidden=256,heads=4,ffn=1024, or a search winner.json.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder for the student: new or empty (see --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace the student already in --out (only a folder hwnas wrote).")
@click.option("--json", "as_json", is_flag=True, help="Print the extracted student as one JSON object.")
def extract_cmd(path, arch, out, overwrite, as_json) -> None:
    """Write a sub-network as a standalone Hugging Face BertModel folder with the teacher's tokenizer.

    The folder is written all at once: an interrupted or failed extraction leaves
    --out as it was (with --overwrite, the old student stays until the new one is complete).
    """
    import json

    from hwnas.cli._options import arch_from_option
    from hwnas.outputs import check_not_input, check_output_folder, staged_folder
    from hwnas.supernet import load_supernet

    if check_output_folder(out, kind="student") and not overwrite:  # before the supernet is loaded
        raise InvalidConfig(f"--out {out} already holds a student; pass --overwrite to replace it, or choose "
                            "another --out")
    check_not_input(out, [("PATH", path)])
    a = arch_from_option(arch)
    sn = load_supernet(path)
    a = sn.validate(a)
    with staged_folder(out, kind="student", replace=overwrite) as stage:
        sn.save_student(a, stage)
    info = json.loads((out / "hwnas_student.json").read_text())
    if as_json:
        click.echo(json.dumps({"student": str(out), "architecture": a.as_dict(), "parameters": info["parameters"],
                               "verified_max_abs_diff": info.get("verified_max_abs_diff"),
                               "supernet": str(path), "supernet_steps": info.get("supernet_steps")}, indent=2))
        return
    echo_kv([
        ("student", str(out)),
        ("architecture", a.key),
        ("parameters", f"{info['parameters']:,}"),
        ("check", f"reloaded with AutoModel, max |diff| {info.get('verified_max_abs_diff', float('nan')):.1e}"),
    ])


@supernet.command("info")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the supernet's description (supernet.json) as JSON.")
def info_cmd(path, as_json) -> None:
    """Show what a supernet folder holds."""
    from hwnas.supernet import load_supernet

    sn = load_supernet(path)
    m = sn.meta
    if as_json:
        import json

        click.echo(json.dumps(m, indent=2))
        return
    echo_kv([
        ("supernet", str(path)),
        ("space", f"{sn.space.name} ({len(sn.space)} architectures)"),
        ("teacher", f"{sn.teacher} {m.get('teacher_shape')}"),
        ("steps", f"{sn.steps_done} of {m.get('steps_target')}"),
        ("relation heads", m.get("relation_heads")),
        ("mixture", _mixture_text(m.get("mixture"), m.get("train") or {})),
        ("data", f"{m.get('data', {}).get('source')} ({m.get('data', {}).get('train_rows')} rows, {m.get('data', {}).get('heldout_rows')} held out)"),
        ("warnings", "; ".join(m.get("warnings", [])) or "none"),
    ])


def _mixture_text(mix, train: dict) -> str:
    if not mix or mix.get("kind", "none") == "none":
        return "none (plain weight sharing)"
    from hwnas.supernet.elastic import MOS_LEGACY

    mats = "FFN and attention" if mix.get("mix_attention") else "FFN"
    opt = {k: mix.get(k, v) for k, v in MOS_LEGACY.items()}  # older folders: the values they were trained with
    return (f"{mix['kind']}-wise Mixture-of-Supernets: {mix.get('experts')} experts per {mats} matrix, "
            f"router hidden {mix.get('router_hidden')}, router lr x{train.get('router_lr_mult', 1.0):g}, "
            f"router init {opt['router_init']:g}, temperature {opt['router_temperature']:g}, "
            f"experts start {opt['expert_init']} {opt['expert_noise']:g}")
