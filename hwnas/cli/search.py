"""``hwnas search``: the most accurate students predicted to meet a latency budget."""

from __future__ import annotations

import math

import click

from hwnas.cli._common import console, fmt_ms, fmt_s, parse_latency_ms


def _number(text: str | None, what: str, *, integer: bool = False):
    if text is None:
        return None
    from hwnas.errors import InvalidConfig

    cleaned = str(text).strip().lower().replace("_", "")
    scale = 1.0
    for suffix, factor in (("k", 1e3), ("m", 1e6), ("g", 1e9)):
        if integer and cleaned.endswith(suffix):
            cleaned, scale = cleaned[:-1], factor
            break
    try:
        value = float(cleaned) * scale
    except ValueError:
        hint = " (e.g. 20m for 20 million)" if integer else ""
        raise InvalidConfig(f"{what} must be a positive number{hint}; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise InvalidConfig(f"{what} must be positive and finite; got {str(text)[:40]!r}")
    return value


def _option_value(text: str):
    """``"200"`` -> 200, ``"1e-4"`` -> 0.0001, ``"true"``/``"false"`` -> bool, anything else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_estimator_options(name: str, items) -> dict:
    """``KEY=VALUE`` items as keyword arguments of estimator ``name``; a malformed item or a key the estimator
    does not take is one line naming what it takes."""
    from hwnas.errors import InvalidConfig
    from hwnas.estimators.base import estimator_options

    accepted = list(estimator_options(name))
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidConfig(f"--estimator-option expects KEY=VALUE; got {item!r}")
        if key not in accepted:
            what = f"its options: {', '.join(accepted)}" if accepted else "it takes none"
            raise InvalidConfig(f"--estimator-option: estimator {name!r} has no option {key!r}; {what}")
        out[key] = _option_value(value)
    return out


@click.command()
@click.option("--predictor", "predictor_path", required=True, type=click.Path(dir_okay=False),
              help="Latency predictor bundle (.hwnas) of the target device.")
@click.option("--supernet", "supernet_path", default=None, type=click.Path(file_okay=False),
              help="Trained supernet folder (the supernet-* estimators need it; others start students from its slices).")
@click.option("--estimator", default=None,
              help="Accuracy estimator: params, flops, wpca, attn-confidence, supernet-loss, supernet-probe, task-proxy, "
                   "distill-proxy, learned [default: supernet-loss with --supernet, else params]. See docs/estimators.md.")
@click.option("--estimator-path", default=None, type=click.Path(file_okay=False),
              help="Fitted model folder of --estimator learned (from `hwnas estimator fit`).")
@click.option("--estimator-option", "estimator_options", multiple=True, metavar="KEY=VALUE",
              help="A setting of --estimator (repeatable), e.g. --estimator-option steps=200 for the task and distill "
                   "proxies; see docs/estimators.md for each estimator's settings.")
@click.option("--screen", default=None,
              help="Two fidelities: score every feasible architecture with this cheap estimator first, and spend "
                   "--evaluations evaluations of --estimator on the best-screened ones (strategy 'screen').")
@click.option("--screen-bands", default=4, show_default=True, type=int,
              help="With --screen: the evaluations go round this many latency bands of the feasible set, slowest "
                   "first, to keep the front covered; 1 spends them all on the best-screened architectures.")
@click.option("--tie-margin", default=None, metavar="MARGIN",
              help="Pick the winner among the candidates whose estimate is within MARGIN of the best: the one with "
                   "the most parameters. A score difference (0.005) or a multiple of the paired standard error (2se; "
                   "distill-proxy with metric accuracy or agreement). Default: the highest estimate wins.")
@click.option("--task", "task_path", default=None, type=click.Path(dir_okay=False),
              help="Labelled task file for task-proxy and distill-proxy (as hwnas distill --task).")
@click.option("--teacher", default="default", show_default=True,
              help="Teacher whose slices the zero-cost and task proxies start from when there is no --supernet; "
                   "distill-proxy needs one fine-tuned on the task (a teacher folder hwnas distill caches).")
@click.option("--max-latency", required=True, help="Latency budget with a unit: 5ms, 800us, 0.005s (a bare number is ms).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (never overwritten; see --resume).")
@click.option("--strategy", default="bo", show_default=True, help="Search strategy: bo, evolution or random.")
@click.option("--evaluations", "evaluations", default=64, show_default=True, type=int,
              help="Accuracy evaluations to spend (latency predictions are nearly free).")
@click.option("--budget", "budget_old", default=None, type=int, hidden=True, help="Deprecated spelling of --evaluations.")
@click.option("--seq-len", default=128, show_default=True, type=int, help="Sequence length the latency is predicted for.")
@click.option("--batch-size", default=1, show_default=True, type=int, help="Batch size the latency is predicted for.")
@click.option("--objective", type=click.Choice(["pareto", "score", "reward"]), default="pareto", show_default=True,
              help="pareto: accuracy and latency; score: accuracy only; reward: one KD-NAS-style number.")
@click.option("--reward-weight", default=0.1, show_default=True, type=float,
              help="With --objective reward: score units lost for a latency equal to the budget.")
@click.option("--max-params", default=None, help="Extra constraint: at most this many parameters (e.g. 20m).")
@click.option("--max-memory", "max_memory", default=None, help="Extra constraint: fp32 weights of at most this many MB.")
@click.option("--metric", type=click.Choice(["loss", "proxy"]), default=None,
              help="Deprecated: --metric loss is --estimator supernet-loss, --metric proxy is --estimator supernet-probe.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the strategy.")
@click.option("--parallel", "batch", default=1, show_default=True, type=int,
              help="Architectures proposed and evaluated together per step.")
@click.option("--verify", "verify_device", default=None,
              help="Measure the winner and the front on this device (must be the predictor's) and compare.")
@click.option("--quick", is_flag=True, help="With --verify: a fast, loose timing protocol (smoke tests only).")
@click.option("--cluster", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="With --verify: measure on this machine, or on a Ray cluster's nodes (docs/fleet.md).")
@click.option("--ray-address", default=None, help="With --cluster ray: the head's HOST:PORT or 'auto' [default: $RAY_ADDRESS].")
@click.option("--resource", "ray_resource", default=None,
              help="With --cluster ray: the custom resource a measuring node offers [default: hwnas-device-<device>].")
@click.option("--resume", is_flag=True, help="Continue the search already in --out.")
@click.option("--overwrite", is_flag=True, help="Replace the search already in --out (only a folder hwnas wrote).")
@click.option("--json", "as_json", is_flag=True, help="Print the winner and the Pareto front as JSON.")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.option("--strict", is_flag=True, help="Refuse a host-bound predictor profiled on another host (default: warn).")
def search(predictor_path, supernet_path, estimator, estimator_path, estimator_options, screen, screen_bands, tie_margin, task_path, teacher, max_latency, out, strategy,
           evaluations, budget_old, seq_len, batch_size, objective, reward_weight, max_params, max_memory, metric, seed, batch,
           verify_device, quick, cluster, ray_address, ray_resource, resume, overwrite, as_json, quiet, strict) -> None:
    """Search for the most accurate students predicted to run within --max-latency.

    The budget is checked against the predictor's calibrated upper bound, so
    that what is feasible on paper is feasible when measured; --verify measures
    the winner and the front on the device to show it.

    \b
    Examples:
      hwnas search --predictor predictors/cpu.hwnas --supernet supernets/small --max-latency 5ms \\
                   --strategy bo --evaluations 64 --out runs/search-5ms
      hwnas search ... --strategy evolution --evaluations 300
      hwnas search ... --verify cpu
    """
    from hwnas.errors import InvalidConfig, PredictorMismatch
    from hwnas.search import get_strategy_class

    budget_ms = parse_latency_ms(max_latency, what="--max-latency")
    from hwnas.search.ties import parse_tie_margin

    ties = parse_tie_margin(tie_margin, "--tie-margin")
    if budget_old is not None:
        from hwnas.cli._options import deprecated

        deprecated("--budget", "--evaluations")
        evaluations = budget_old
    if resume and overwrite:
        raise InvalidConfig("give one of --resume (continue --out) and --overwrite (replace it)")
    from hwnas.estimators import ESTIMATORS, make_estimator

    if metric is not None:
        replacement = {"loss": "supernet-loss", "proxy": "supernet-probe"}[metric]
        if estimator is not None and estimator != replacement:
            raise InvalidConfig(f"--metric {metric} and --estimator {estimator} disagree; give --estimator only")
        click.echo(f"warning: --metric is deprecated; use --estimator {replacement}", err=True)
        estimator = replacement
    if estimator is None:
        if supernet_path is None:
            # The benchmark's evidence (docs/estimators.md): on the ground-truth students no affordable
            # estimator has yet ranked better than the parameter count, within latency bands or overall.
            estimator = "params"
            click.echo("estimator: params (the default without --supernet; the best-ranking affordable estimator "
                       "on the ground-truth table so far, see docs/estimators.md)", err=True)
        else:
            estimator = "supernet-loss"
    for flag, name in (("--estimator", estimator), ("--screen", screen)):
        if name is not None and name not in ESTIMATORS.names():
            raise InvalidConfig(f"{flag}: unknown estimator {name!r}; known: {', '.join(ESTIMATORS.names())}")
    if estimator_path is not None and "learned" not in (estimator, screen):
        raise InvalidConfig("--estimator-path is the fitted model of the learned estimator; give --estimator learned "
                            "(or --screen learned) with it")
    from hwnas.cli._options import explicit

    if screen is None and explicit(click.get_current_context(), "screen_bands"):
        raise InvalidConfig("--screen-bands only applies with --screen NAME")
    if screen_bands < 1:
        raise InvalidConfig(f"--screen-bands must be an integer >= 1; got {screen_bands}")
    if screen is not None:
        if strategy not in ("bo", "screen"):
            raise InvalidConfig(f"--screen chooses the strategy 'screen'; drop --strategy {strategy}")
        strategy = "screen"
    get_strategy_class(strategy)  # an unknown name fails here, before anything is loaded
    if evaluations < 1:
        raise InvalidConfig(f"{'--budget' if budget_old is not None else '--evaluations'} must be an integer >= 1 "
                            f"(accuracy evaluations); got {evaluations}")
    from hwnas.cli._options import check_seq_len, require_int

    if objective != "reward" and explicit(click.get_current_context(), "reward_weight"):
        raise InvalidConfig(f"--reward-weight only applies with --objective reward (the objective is {objective})")
    if not (math.isfinite(reward_weight) and reward_weight >= 0):
        raise InvalidConfig(f"--reward-weight must be a finite number >= 0; got {reward_weight}")
    check_seq_len(seq_len, "--seq-len")
    require_int(batch_size, "--batch-size", maximum=1 << 20)
    if batch < 1:
        raise InvalidConfig(f"--parallel must be an integer >= 1; got {batch}")
    max_params_n = _number(max_params, "--max-params", integer=True)
    max_memory_mb = _number(max_memory, "--max-memory")
    from hwnas.outputs import check_search_out

    if overwrite:
        from hwnas.cli._options import replace_owned_folder

        replace_owned_folder(out, kind="search")
    predictor_info = check_search_out(out, resume, predictor_path)  # before anything is loaded or predicted

    from hwnas.predictors import load_predictor

    predictor = load_predictor(predictor_path)
    from hwnas.cli._common import one_line_warnings
    from hwnas.predictors.host import HostMismatchWarning, check_host

    with one_line_warnings(HostMismatchWarning):
        check_host(predictor.manifest, strict=strict)
    if verify_device is not None:
        # Fail before the search, not after it: measuring another device than
        # the predictor's would compare unrelated numbers.
        from hwnas.search.verify import predictor_device_settings

        settings = predictor_device_settings(predictor)
        predictor.check_device(verify_device)
        from hwnas.devices import create_device

        if cluster == "ray":  # availability is each node's question; the cluster's is asked now
            from hwnas.profiling.fleet import verify_fleet

            fleet = verify_fleet(verify_device, settings, ray_address, ray_resource)
        else:
            create_device(verify_device, threads=settings["threads"], dtype=settings["dtype"])  # available here?
    if (cluster == "ray" or ray_address or ray_resource) and verify_device is None:
        raise InvalidConfig("--cluster ray, --ray-address and --resource measure the front with --verify DEVICE; add --verify")
    if cluster == "local" and (ray_address or ray_resource):
        raise InvalidConfig("--ray-address and --resource need --cluster ray")

    supernet = None
    if supernet_path is not None:
        from hwnas.supernet import load_supernet

        supernet = load_supernet(supernet_path)
        space = supernet.space
    elif predictor.space is not None:
        from hwnas.space import get_space

        space = get_space(predictor.space)
    else:
        raise InvalidConfig(f"predictor {predictor_path} names no space; give --supernet (its space is searched)")
    if supernet is not None and predictor.space is not None and predictor.space != space.name:
        raise PredictorMismatch(
            f"supernet {supernet_path} was trained on space {space.name!r} but predictor {predictor_path} "
            f"on space {predictor.space!r}; use a predictor and a supernet of the same space"
        )

    context = {"supernet": supernet, "teacher": teacher, "task": task_path, "path": estimator_path}
    options = parse_estimator_options(estimator, estimator_options)
    scorer = make_estimator(estimator, **context, **options)
    scorer.check_space(space)
    if ties is not None:
        ties.check_estimator(scorer)
    strategy_arg = strategy
    if screen is not None:
        from hwnas.search.screen import ScreenThenDecide

        screener = make_estimator(screen, **context)
        screener.check_space(space)
        strategy_arg = ScreenThenDecide(screen=screener, bands=screen_bands, seed=seed)
    settings = dict(predictor=predictor, estimator=scorer, max_latency_ms=budget_ms, space=space, seq_len=seq_len,
                    batch_size=batch_size, strategy=strategy_arg, evaluations=evaluations, seed=seed, objective=objective,
                    reward_weight=reward_weight, max_params=max_params_n, max_memory_mb=max_memory_mb, batch=batch,
                    out=out, resume=resume, ties=ties,
                    describe={**predictor_info, "supernet": supernet_path and str(supernet_path),
                              "device": predictor.device, "screen": screen, "task": task_path,
                              **({"estimator_options": options} if options else {})})
    from hwnas.outputs import remove_if_unfinished

    with remove_if_unfinished(out):  # a search that fails before its first evaluation leaves no folder behind
        result = _run_with_progress(settings, quiet=quiet or as_json)
    if as_json:
        _print_json(result)
    else:
        _print_result(result)
    if result.winner is None:
        raise InvalidConfig("no feasible architecture was evaluated; raise --evaluations or --max-latency")
    if verify_device is not None:
        _verify(result, predictor, verify_device, quick, strict, fleet if cluster == "ray" else None)


def _run_with_progress(settings: dict, *, quiet: bool = False):
    """:func:`hwnas.search.search` with a progress bar (the library only calls back; the CLI draws)."""
    from hwnas.cli._progress import ProgressBars
    from hwnas.progress import ProgressEvent
    from hwnas.search import search as run

    strategy, out = settings["strategy"], settings["out"]
    stage = str(getattr(strategy, "name", strategy))
    with ProgressBars(quiet, label="search") as bars:
        def on_start(todo: int, done: int) -> None:
            if done:
                bars.status(f"resuming {out}: {done} evaluation(s) already there")
            bars.event(ProgressEvent(stage, done, todo + done))

        def on_progress(p) -> None:
            bars.event(ProgressEvent(stage, p.evaluations, p.total,
                                     {"best feasible": p.best_feasible_score, "hypervolume": p.hypervolume}))

        return run(**settings, on_start=on_start, on_progress=on_progress, on_status=bars.status)


def _print_json(result) -> None:
    import json

    def row(c):
        return {"arch": c.arch.as_dict(), "score": c.score, "latency_ms": c.latency_ms,
                "latency_upper_ms": c.latency_upper_ms, "params": c.params}

    click.echo(json.dumps({"winner": row(result.winner) if result.winner is not None else None,
                           "front": [row(c) for c in result.front], "evaluations": len(result.evaluated),
                           "hypervolume": result.hypervolume, "out": str(result.out),
                           **({"ties": result.config["ties"]} if "ties" in result.config else {})}, indent=2))


def _print_result(result) -> None:
    from rich.table import Table

    table = Table(title=f"Pareto front ({len(result.front)} of {len(result.evaluated)} evaluated)")
    for col in ("architecture", "score", "predicted", "upper bound", "params"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for c in result.front:
        mark = " (winner)" if result.winner is not None and c.arch == result.winner.arch else ""
        table.add_row(f"{c.arch.short}{mark}", f"{c.score:.4f}", fmt_ms(c.latency_ms), fmt_ms(c.latency_upper_ms),
                      f"{c.params / 1e6:.1f}M")
    out = console()
    out.print(table)
    w = result.winner
    if w is not None:
        out.print(f"winner: {w.arch}  score {w.score:.4f}  predicted {fmt_ms(w.latency_ms)}  "
                  f"upper bound {fmt_ms(w.latency_upper_ms)}  budget {fmt_ms(result.problem.budget_ms)}")
        ties = result.config.get("ties")
        if ties:
            out.print(f"tie margin {ties['text']}: {len(ties['tied'])} candidate(s) within it of the best "
                      f"({ties['best']}, {ties['best_value']:.4f}); the winner has the most parameters among them")
    out.print(f"hypervolume {result.hypervolume:.4g}; {len(result.evaluated)} evaluations in {fmt_s(result.wall_s)}"
              f"{' (every feasible architecture evaluated)' if result.stopped == 'exhausted' else ''}; "
              f"results in {result.out}")


def _verify(result, predictor, device: str, quick: bool, strict: bool = False, fleet=None) -> None:
    from rich.table import Table

    from hwnas.devices.timing import TimingConfig
    from hwnas.predictors.host import HostMismatchWarning
    from hwnas.search.runner import write_json
    from hwnas.search.verify import predictor_device_settings, summarise, verdict_lines, verify

    archs = [result.winner.arch] + [c.arch for c in result.front]
    roles = ["winner"] + ["front"] * len(result.front)
    con = console(stderr=True)
    import warnings

    with con.status(f"measuring {len(set(archs))} architecture(s) on {device}") as status, warnings.catch_warnings():
        warnings.simplefilter("ignore", HostMismatchWarning)  # already said once when the predictor was loaded
        records = verify(archs, device=device, predictor=predictor, budget_ms=result.problem.budget_ms,
                         seq_len=result.problem.seq_len, batch_size=result.problem.batch_size, roles=roles,
                         timing=TimingConfig.quick() if quick else None, strict=strict,
                         on_status=lambda m: status.update(m), fleet=fleet)
    summary = summarise(records)
    settings = predictor_device_settings(predictor)
    write_json(result.out / "verify.json", {
        "device": device, "dtype": settings["dtype"], "threads": settings["threads"],
        "clock": (predictor.manifest.get("device") or {}).get("clock") or "wall", "seq_len": result.problem.seq_len,
        "batch_size": result.problem.batch_size, "timing": "quick" if quick else "default", "summary": summary,
        **({"cluster": "ray", "nodes": sorted({r.node_id for r in records if r.node_id})} if fleet else {}),
        "architectures": [r.to_dict() for r in records],
    })
    table = Table(title=f"verified on {device}: predicted against measured")
    for col in ("architecture", "role", "predicted", "upper bound", "measured", "error", "within budget",
                "normalised", "within (normalised)"):
        table.add_column(col, justify="left" if col in ("architecture", "role") else "right")
    for r in records:
        norm = r.within_budget_normalised
        table.add_row(r.arch.short, r.role, fmt_ms(r.predicted_ms), fmt_ms(r.upper_ms), fmt_ms(r.measured_ms),
                      f"{r.error * 100:+.1f}%", "yes" if r.within_budget else "[red]NO[/]",
                      "-" if r.normalised_ms is None else fmt_ms(r.normalised_ms),
                      "-" if norm is None else ("yes" if norm else "[red]NO[/]"))
    out = console()
    out.print(table)
    out.print(f"within budget: {summary['within_budget'] * 100:.0f}% of {summary['n']}; below the upper bound: "
              f"{summary['within_upper'] * 100:.0f}%; mean |error| {summary['mean_abs_error'] * 100:.1f}%; "
              f"written to {result.out / 'verify.json'}")
    for line in verdict_lines(records[0].measured_ms, result.problem.budget_ms,
                              records[0].drift if records[0].drift and records[0].drift.reference_arch else None,
                              what="the winner measured", normalised_ms=records[0].normalised_ms):
        out.print(line, markup=False)
