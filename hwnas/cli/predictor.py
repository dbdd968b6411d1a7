"""``hwnas predictor fit|eval|show`` and ``hwnas predict``: portable latency predictors."""

from __future__ import annotations

import json
import math

import click

from hwnas.cli._common import console, fmt_ms
from hwnas.cli._options import list_option


def _features_option(values: tuple[str, ...] | None):
    """``--features`` (the one list syntax) as column names, or ``None`` when not given."""
    if not values:
        return None
    from hwnas.cli._options import parse_name_list

    return list(parse_name_list(values, "--features", example="a,b,c"))


def _metrics_table(title: str, rows: list[tuple[str, dict]]):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    for label in ("n", "within ±5%", "within ±10%", "MAPE", "RMSE", "Kendall tau", "Spearman rho", "below upper"):
        table.add_column(label, justify="right")
    for name, m in rows:
        table.add_row(
            name, str(m.get("n", "")), f"{m['within_5'] * 100:.1f}%", f"{m['within_10'] * 100:.1f}%",
            f"{m['mape'] * 100:.2f}%", f"{m['rmse_ms']:.3f} ms", f"{m['kendall_tau']:.3f}", f"{m['spearman_rho']:.3f}",
            f"{m['upper_coverage'] * 100:.1f}%" if "upper_coverage" in m else "-",
        )
    return table


def _check_device(pred, name: str, override: bool, **settings) -> None:
    """``check_device``; with the override its warning becomes one line on stderr."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred.check_device(name, override=override, **settings)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)


def _check_host(pred, strict: bool) -> None:
    """This host against the predictor's, for host-bound devices: one warning line, or exit 2 with ``strict``."""
    from hwnas.predictors.host import host_mismatch

    message = host_mismatch(pred.manifest)
    if message is None:
        return
    if strict:
        from hwnas.errors import PredictorMismatch

        raise PredictorMismatch(message + " (--strict)")
    click.echo(f"warning: {message}", err=True)


@click.group()
def predictor() -> None:
    """Fit, evaluate and inspect portable latency predictors (.hwnas bundles).

    \b
    Examples:
      hwnas predictor fit profiles/cpu.jsonl --out predictors/cpu.hwnas
      hwnas predictor eval predictors/cpu.hwnas profiles/cpu-holdout.jsonl
      hwnas predictor show predictors/cpu.hwnas
      hwnas predictor check predictors/cpu.hwnas --device cpu
      hwnas predictor fit ort.jsonl --base predictors/cpu.hwnas --out predictors/ort.hwnas
      hwnas predictor fit measurements.csv --target latency_ms --features a,b,c --out p.hwnas
    """


@predictor.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output bundle (.hwnas); never overwritten without --overwrite.")
@click.option("--base", "base_path", type=click.Path(dir_okay=False), default=None,
              help="Transfer this predictor to DATA's device from few samples instead of fitting from scratch.")
@click.option("--target", default=None, help="Latency column in ms for CSV/Parquet tables. [default: latency_ms]")
@list_option("--features", help="Numeric input columns of a table (default: layers,hidden,heads,ffn,seq_len,batch_size).")
@click.option("--device", "device_name", default=None, help="Device name for a table without a 'device' column.")
@click.option("--coverage", default=0.95, show_default=True, type=float, help="Probability that a measurement lies below the upper bound.")
@click.option("--folds", default=5, show_default=True, type=int, help="Cross-validation folds (hyper-parameters and calibration).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the folds and XGBoost.")
@click.option("--overwrite", "force", is_flag=True, help="Replace --out if it exists (only a bundle hwnas wrote).")
@click.option("--force", "force_old", is_flag=True, hidden=True, help="Deprecated spelling of --overwrite.")
@click.option("--json", "as_json", is_flag=True, help="Print the saved bundle's path and metrics as JSON.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Parity plot (.png; residuals beside it as NAME-residuals.png). [default: OUT.parity.png, OUT.residuals.png]")
@click.option("--no-plot", is_flag=True, help="Write no plots.")
@click.option("--keep-outliers", is_flag=True,
              help="Keep records more than 5x from the profile's own physical cost model (left out by default "
                   "while they are at most a tenth of the records; docs/robustness.md).")
@click.option("--quiet", is_flag=True, help="No progress display (the result is still printed).")
def fit(data, out, base_path, target, features, device_name, coverage, folds, seed, force, force_old, as_json,
        plot_path, no_plot, keep_outliers, quiet) -> None:
    """Fit a predictor on a profile (.jsonl) or a table (.csv, .parquet) and save it as a bundle."""
    if force_old:
        from hwnas.cli._options import deprecated

        deprecated("--force", "--overwrite")
        force = True
    from pathlib import Path

    from hwnas.errors import InvalidConfig
    from hwnas.predictors.bundle import load_bundle, save_bundle
    from hwnas.predictors.training import fit_predictor, load_measurements, transfer_predictor

    if not 0 < coverage < 1:
        raise InvalidConfig(f"--coverage must be between 0 and 1 (e.g. 0.95); got {coverage}")
    if folds < 2:
        raise InvalidConfig(f"--folds must be an integer >= 2; got {folds}")
    from hwnas.outputs import check_not_input, check_output_file, is_bundle

    check_not_input(out, [("DATA", data), ("--base", base_path)])
    check_output_file(out, replace=force, flag="--overwrite", owned=is_bundle, what="predictor bundle")
    if not no_plot:
        from hwnas.plots.predictor import plot_paths

        plots = plot_paths(plot_path, Path(out).with_suffix(""))  # a bad --plot fails before the fit
    meas = load_measurements(data, target=target, features=_features_option(features), device=device_name)
    outliers = None if keep_outliers else _leave_out_physics_outliers(meas)
    left_out = 0 if outliers is None else int(outliers.sum())
    if outliers is not None:
        meas = meas.subset(~outliers)
    con = console(stderr=True)
    if base_path:
        base = load_bundle(base_path)
        with _status(con, quiet, f"transferring {base.device} -> {meas.device['name']} from {len(meas)} measurement(s)"):
            pred = transfer_predictor(base, meas, coverage=coverage, seed=seed)
        title = f"leave-one-out accuracy of the transfer ({len(meas)} measurements)"
    else:
        with _status(con, quiet, f"fitting on {len(meas)} measurement(s): {folds}-fold cross-validation of the "
                                 "hyper-parameters"):
            pred = fit_predictor(meas, seed=seed, n_folds=folds, coverage=coverage)
        title = f"{folds}-fold cross-validated accuracy ({len(meas)} measurements)"
    save_bundle(pred, out, overwrite=force)
    if as_json:
        click.echo(json.dumps({"bundle": str(out), "device": pred.device, "measurements": len(meas),
                               "outliers_left_out": left_out, "coverage": pred.coverage,
                               "guaranteed_coverage": pred.guaranteed_coverage,
                               "upper_factor": math.exp(pred.manifest["uncertainty"]["log_margin"]),
                               "metrics": pred.manifest["metrics"]["cv"]}, indent=2))
    else:
        console().print(_metrics_table(title, [(meas.device["name"], pred.manifest["metrics"]["cv"])]))
        click.echo(f"saved {out} (device {pred.device}, upper bound at nominal {pred.coverage:.0%} coverage, "
                   f"guaranteed about {pred.guaranteed_coverage:.0%}: "
                   f"x{math.exp(pred.manifest['uncertainty']['log_margin']):.3f})")
    if not no_plot:
        from hwnas.plots.predictor import write_predictor_plots

        kind = "leave-one-out" if base_path and len(meas) <= 40 else "out-of-fold"
        written = write_predictor_plots(meas.y, pred.cv_predictions_, meas.X, meas.inputs, pred.manifest, *plots, kind=kind)
        click.echo(f"plots: {', '.join(map(str, written))}", err=as_json)


def _status(con, quiet: bool, text: str):
    """A spinner on stderr while a step runs, or nothing with ``--quiet``."""
    from contextlib import nullcontext

    return nullcontext() if quiet else con.status(text)


def _leave_out_physics_outliers(meas):
    """``predictor fit``'s rule for gross outliers: a boolean mask of the records to leave out, or ``None``.

    Records more than :data:`~hwnas.validate.PHYSICS_OUTLIER_RATIO` times from the
    physical cost model fitted on the same profile are left out, with one warning
    line, while they are at most :data:`~hwnas.validate.PHYSICS_EXCLUDE_SHARE` of
    the records; more than that says the model does not describe the device, and
    everything is kept (the load has already warned). Tables are left as they are.
    """
    from hwnas.validate import PHYSICS_EXCLUDE_SHARE, PHYSICS_OUTLIER_RATIO, physics_outliers

    if meas.is_table:
        return None
    mask, _ = physics_outliers(meas.X, meas.y)
    n = int(mask.sum())
    if not n or n > PHYSICS_EXCLUDE_SHARE * len(meas):
        return None
    click.echo(f"warning: left out {n} of {len(meas)} measurement(s) more than {PHYSICS_OUTLIER_RATIO:g}x from the "
               "profile's physical cost model (--keep-outliers keeps them)", err=True)
    return mask


@predictor.command(name="eval")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--target", default=None, help="Latency column in ms for CSV/Parquet tables. [default: latency_ms]")
@list_option("--features", help="Input columns of a table (default: the predictor's inputs).")
@click.option("--override-device", is_flag=True, help="Evaluate even if DATA was measured on another device.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Parity plot (.png; residuals beside it as NAME-residuals.png). "
                   "[default: BUNDLE.eval-DATA.parity.png and .residuals.png beside the bundle]")
@click.option("--no-plot", is_flag=True, help="Write no plots.")
def eval_(bundle, data, target, features, override_device, as_json, plot_path, no_plot) -> None:
    """Accuracy of a predictor on measurements it never saw."""
    from pathlib import Path

    import numpy as np

    from hwnas.predictors.bundle import load_bundle
    from hwnas.predictors.training import evaluate_predictor, load_measurements

    pred = load_bundle(bundle)
    feats = _features_option(features)
    if feats is None and pred.is_table:
        feats = list(pred.manifest["inputs"])
    meas = load_measurements(data, target=target, features=feats)
    if meas.device.get("name") not in (None, "unknown"):
        _check_device(pred, meas.device["name"], override_device, threads=meas.device.get("threads"),
                      dtype=meas.device.get("dtype"), clock=meas.device.get("clock"))
    metrics = evaluate_predictor(pred, meas)
    lo, hi = pred._lo, pred._hi
    outside = int(np.sum(np.any((meas.X < lo) | (meas.X > hi), axis=1)))
    metrics["outside_domain"] = outside
    written = []
    if not no_plot:
        from hwnas.plots.predictor import plot_paths, write_predictor_plots

        b = Path(bundle)
        plots = plot_paths(plot_path, b.with_name(f"{b.stem}.eval-{Path(data).stem}"))
        written = write_predictor_plots(meas.y, np.exp(pred.log_predict_raw(meas.X)), meas.X, meas.inputs, pred.manifest,
                                        *plots, kind="held-out")
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    console().print(_metrics_table(f"{bundle} on {data}", [(pred.device, metrics)]))
    if outside:
        click.echo(f"warning: {outside} of {len(meas)} row(s) lie outside the training domain", err=True)
    if written:
        click.echo(f"plots: {', '.join(map(str, written))}")


@predictor.command()
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
@click.option("--plot", "plot_path", is_flag=False, flag_value="-", default=None, type=click.Path(dir_okay=False),
              help="Draw the stored metrics and domain: --plot (beside the bundle as BUNDLE.png) or --plot PATH.png.")
def show(bundle, as_json, plot_path) -> None:
    """Device, versions, domain, metrics and model of a bundle (verified on load)."""
    from pathlib import Path

    from hwnas.cli._common import echo_kv
    from hwnas.predictors.bundle import load_bundle

    pred = load_bundle(bundle)
    m = pred.manifest
    if plot_path is not None:
        from hwnas.plots.predictor import bundle_figure

        target = Path(bundle).with_suffix(".png") if plot_path == "-" else Path(plot_path)
        bundle_figure(m, path=target)
        click.echo(f"plot: {target}", err=as_json)
    if as_json:
        sig = pred.signature
        click.echo(json.dumps({**m, "signature": {"signed": sig.signed, "key_id": sig.key_id, "trusted": sig.trusted}},
                              indent=2))
        return
    dev = m["device"]
    fp = dev.get("fingerprint") or {}
    dom = m["domain"]
    cv = m.get("metrics", {}).get("cv", {})
    rows = [
        ("bundle", f"{bundle} (format {m['format']} v{m['format_version']}, {m.get('kind')})"),
        ("device", f"{dev.get('name')} threads={dev.get('threads')} dtype={dev.get('dtype')} "
                   f"clock={dev.get('clock') or 'wall (not recorded)'}"),
        ("host", f"{fp.get('cpu_model', '-')}, torch {fp.get('torch', '-')}"),
        ("reference", _reference_text(m.get("reference"))),
        ("space", str(m.get("space"))),
        ("inputs", ", ".join(m["inputs"])),
        ("domain", ", ".join(f"{k} {v[0]:g}..{v[1]:g}" for k, v in dom["ranges"].items())),
        ("samples", str(dom["n_samples"])),
        ("latency range", f"{fmt_ms(dom['latency_ms'][0])} .. {fmt_ms(dom['latency_ms'][1])}"),
        ("physics terms", ", ".join(m["physics"]["terms"])),
        ("trees", f"{m.get('model', {}).get('num_trees')} on {', '.join(m['features']['tree_features'])}"),
        ("corrections", str(len(m.get("corrections") or []))),
        ("upper bound", f"nominal {m['uncertainty']['coverage']:.0%} coverage (guaranteed about "
                        f"{pred.guaranteed_coverage:.0%}, CV+), "
                        f"x{math.exp(m['uncertainty']['log_margin']):.3f}"),
    ]
    if cv:
        rows.append(("fit-time CV", f"within ±5% {cv['within_5']:.1%}, ±10% {cv['within_10']:.1%}, MAPE {cv['mape']:.2%}, "
                                    f"Kendall tau {cv['kendall_tau']:.3f}"))
    base = m.get("base") or {}
    if base.get("fingerprint"):
        bfp = base["fingerprint"]
        rows.append(("base host", f"{base.get('device')}: {bfp.get('cpu_model', '-')}, torch {bfp.get('torch', '-')}"))
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in (m.get("library_versions") or {}).items())))
    rows.append(("signature", pred.signature.describe()))
    echo_kv(rows)


def _reference_text(ref) -> str:
    if not isinstance(ref, dict) or not ref.get("arch"):
        return "no reference recorded (profiled before hwnas timed one): drift cannot be measured"
    return (f"{ref['arch']} @ seq {ref.get('seq_len')}, batch {ref.get('batch_size')}: {fmt_ms(ref['latency_ms'])} "
            f"at fit time (median of {ref.get('n_chunks')} chunk(s), {fmt_ms(ref.get('min_ms', float('nan')))} .. "
            f"{fmt_ms(ref.get('max_ms', float('nan')))})")


@click.command()
@click.option("--predictor", "bundle", required=True, type=click.Path(dir_okay=False), help="A .hwnas bundle.")
@click.option("--arch", "arch_texts", multiple=True, help="layers=4,hidden=256,heads=4,ffn=1024 (repeatable).")
@click.option("--archs", "archs_file", type=click.Path(dir_okay=False), default=None,
              help="A file of architectures (jsonl/json/txt, or a search winner.json).")
@click.option("--seq-len", default=128, show_default=True, type=int, help="Sequence length.")
@click.option("--batch-size", default=1, show_default=True, type=int, help="Batch size.")
@click.option("--device", "device_name", default=None, help="Refuse unless the predictor was fitted on this device.")
@click.option("--override-device", is_flag=True, help="Use the predictor even for another --device.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.option("--strict", is_flag=True, help="Refuse a host-bound predictor profiled on another host (default: warn).")
def predict(bundle, arch_texts, archs_file, seq_len, batch_size, device_name, override_device, as_json, strict) -> None:
    """Predict the latency (ms) of architectures with a predictor bundle.

    \b
    Example:
      hwnas predict --predictor predictors/cpu.hwnas --arch layers=4,hidden=256,heads=4,ffn=1024 --seq-len 128 --batch-size 1
    """
    import warnings

    from hwnas.devices.base import Shape
    from hwnas.errors import InvalidArchitecture
    from hwnas.predictors.bundle import load_bundle
    from hwnas.predictors.predictor import OutOfDomainWarning
    from hwnas.space import load_architectures

    from hwnas.cli._options import check_seq_len, require_int

    check_seq_len(seq_len, "--seq-len")
    require_int(batch_size, "--batch-size", maximum=1 << 20)
    Shape(batch_size, seq_len)  # validates both, naming the bad one
    from hwnas.cli._options import arch_from_option

    archs = [arch_from_option(t) for t in arch_texts]
    if archs_file:
        archs.extend(load_architectures(archs_file))
    if not archs:
        raise InvalidArchitecture("give at least one --arch layers=..,hidden=..,heads=..,ffn=.. or an --archs file")
    pred = load_bundle(bundle)
    if device_name is not None:
        _check_device(pred, device_name, override_device)
    _check_host(pred, strict)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutOfDomainWarning)
        lat = pred.predict(archs, seq_len=seq_len, batch_size=batch_size)
        upper = pred.predict_upper(archs, seq_len=seq_len, batch_size=batch_size)
    for w in caught[:1]:
        click.echo(f"warning: {w.message}", err=True)
    if as_json:
        for a, l, u in zip(archs, lat, upper, strict=True):
            click.echo(json.dumps({"arch": a.as_dict(), "seq_len": seq_len, "batch_size": batch_size,
                                   "device": pred.device, "latency_ms": float(l), "latency_upper_ms": float(u)}))
        return
    from rich.table import Table

    table = Table(title=f"{pred.device}, seq_len={seq_len}, batch_size={batch_size}")
    table.add_column("architecture")
    table.add_column("latency", justify="right")
    table.add_column(f"upper ({pred.coverage:.0%})", justify="right")
    for a, l, u in zip(archs, lat, upper, strict=True):
        table.add_row(a.key, f"{l:.3f} ms", f"{u:.3f} ms")
    console().print(table)


@predictor.command()
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--device", "device_name", required=True, help="The device to check on (must be the predictor's).")
@click.option("--archs", "n_archs", default=4, show_default=True, type=int,
              help="Architectures of the predictor's space to measure besides the reference.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds the choice of architectures.")
@click.option("--quick", is_flag=True, help="A fast, loose timing protocol (smoke tests only).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", is_flag=True, help="No progress display (the result is still printed).")
def check(bundle, device_name, n_archs, seed, quick, as_json, quiet) -> None:
    """Does the predictor still hold on this host? Measure its reference and a few architectures now.

    The reference architecture gives the machine's speed now against profiling
    time; each architecture's measurement, normalised by it, is compared with the
    prediction. It holds when every normalised measurement lies within the
    predictor's calibrated band (its upper-bound margin, at least ±10%).
    Exit code 0 when it holds, 1 when it does not.
    """
    from hwnas.devices.timing import TimingConfig
    from hwnas.errors import InvalidConfig
    from hwnas.predictors.bundle import load_bundle
    from hwnas.predictors.host import describe_host, host_mismatch
    from hwnas.search.verify import predictor_reference, verify

    if n_archs < 1:
        raise InvalidConfig(f"--archs must be an integer >= 1; got {n_archs}")
    pred = load_bundle(bundle)
    if pred.is_table:
        raise InvalidConfig(f"{bundle} was fitted on table columns, not architectures; it cannot be checked on a device")
    pred.check_device(device_name)
    archs, shape = _check_archs(pred, n_archs, seed)
    ref_task, _ = predictor_reference(pred)
    host = host_mismatch(pred.manifest)
    con = console(stderr=True)
    with _status(con, quiet, f"measuring {len(archs)} architecture(s) and the reference on {device_name}"):
        results = verify(archs, device=device_name, predictor=pred, budget_ms=float("inf"), seq_len=shape[0],
                         batch_size=shape[1], timing=TimingConfig.quick() if quick else None, seed=seed)
    band = max(math.exp(float(pred.manifest["uncertainty"]["log_margin"])) - 1.0, 0.10)
    rows = []
    for r in results:
        basis = r.normalised_ms if r.normalised_ms is not None else r.measured_ms
        rows.append({"arch": r.arch.key, "predicted_ms": r.predicted_ms, "measured_ms": r.measured_ms,
                     "normalised_ms": r.normalised_ms, "error_raw": r.predicted_ms / r.measured_ms - 1,
                     "error": r.predicted_ms / basis - 1, "within_band": abs(basis / r.predicted_ms - 1) <= band})
    holds = all(row["within_band"] for row in rows)  # the measurements decide; a host difference is reported
    drift = results[0].drift
    fp = (pred.manifest.get("device") or {}).get("fingerprint") or {}
    result = {"bundle": str(bundle), "device": device_name, "seq_len": shape[0], "batch_size": shape[1],
              "band": band, "holds": holds, "host_mismatch": host, "drift": drift.to_dict() if drift else None,
              "profiled_host": describe_host(fp, pred.device) if fp else None, "architectures": rows}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"{bundle} on {device_name} now (seq {shape[0]}, batch {shape[1]})")
        for col in ("architecture", "predicted", "measured", "normalised", "error (raw)", "error (normalised)", "in band"):
            table.add_column(col, justify="left" if col == "architecture" else "right")
        for row in rows:
            short = row["arch"].replace("layers=", "L").replace(",hidden=", "-H").replace(",heads=", "-A").replace(",ffn=", "-I")
            table.add_row(short, fmt_ms(row["predicted_ms"]), fmt_ms(row["measured_ms"]),
                          "-" if row["normalised_ms"] is None else fmt_ms(row["normalised_ms"]),
                          f"{row['error_raw'] * 100:+.1f}%",
                          "-" if row["normalised_ms"] is None else f"{row['error'] * 100:+.1f}%",
                          "yes" if row["within_band"] else "[red]NO[/]")
        out = console()
        out.print(table)
        out.print(drift.describe() if drift and ref_task else
                  "no reference recorded in this predictor: errors are raw, drift unknown", markup=False)
        if host:
            out.print(f"host: {host}", markup=False)
        inside = sum(row["within_band"] for row in rows)
        if holds:
            out.print(f"the predictor still holds on this host: {inside} of {len(rows)} architecture(s) within "
                      f"±{band:.0%} of the prediction{' after normalising for drift' if ref_task else ''}", markup=False)
        else:
            out.print(f"the predictor does NOT hold on this host: {inside} of {len(rows)} architecture(s) within "
                      f"±{band:.0%}{' (it was profiled on another host)' if host else ''}. Re-profile this host, or "
                      "transfer the predictor from a few measurements (hwnas predictor fit new.jsonl --base "
                      f"{bundle}); if the machine is busy, re-check on a quiet machine", markup=False)
    if not holds:
        raise SystemExit(1)


def _check_archs(pred, n: int, seed: int):
    """``n`` architectures of the predictor's space (its reference first) and the shape ``(seq_len, batch_size)``."""
    from hwnas.errors import HwnasError
    from hwnas.search.verify import predictor_reference
    from hwnas.space import get_space

    ref_task, _ = predictor_reference(pred)
    shapes = (pred.manifest.get("domain") or {}).get("shapes") or [{"seq_len": 128, "batch_size": 1}]
    shape = (ref_task.shape.seq_len, ref_task.shape.batch_size) if ref_task else \
        (int(shapes[0]["seq_len"]), int(shapes[0]["batch_size"]))
    archs = [ref_task.arch] if ref_task else []
    try:
        space = get_space(pred.space) if pred.space else None
    except HwnasError:
        space = None  # a space file that is not here: the reference alone
    if space is not None:
        for a in space.sample(n + 1, plan="random", seed=seed):
            if a not in archs and len(archs) < n + (1 if ref_task else 0):
                archs.append(a)
    if not archs:
        from hwnas.errors import InvalidConfig

        raise InvalidConfig(f"{pred.path}: no reference and no known space ({pred.space!r}) to choose architectures from")
    return archs, shape


def run_adaptive_profile(config, out, resume: bool, *, target: float, round_size: int, quiet: bool = False) -> None:
    """``hwnas profile --until-accuracy``: adaptive rounds with a progress bar and a round table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from hwnas.errors import InvalidConfig
    from hwnas.profiling.adaptive import profile_until_accuracy

    if not 0 < target <= 1:
        raise InvalidConfig(f"--until-accuracy must be a share in (0, 1], e.g. 0.95; got {target}")
    if round_size < 1:
        raise InvalidConfig(f"--round-size must be an integer >= 1; got {round_size}")
    con = console(stderr=True)
    progress = Progress(TextColumn("[bold]adaptive profiling[/] " + config.device), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.fields[last]}"), console=con, disable=quiet)
    task = progress.add_task("profile", total=config.samples, last="")

    def on_record(record) -> None:
        progress.update(task, advance=1, last=f"L{record['layers']}-H{record['hidden']}-A{record['heads']}-I{record['ffn']}: "
                                              f"{fmt_ms(record['latency_ms'])}")

    def on_round(rnd) -> None:
        if not quiet:
            con.print(f"round {rnd.round}: {rnd.measured} measured, cross-validated within ±10% "
                      f"{rnd.cv_within_10:.1%} (±5% {rnd.cv_within_5:.1%}, MAPE {rnd.cv_mape:.2%}), {len(rnd.added)} added")

    def on_status(message: str) -> None:
        progress.update(task, last=message)

    with progress:  # Ctrl-C: hwnas.cli.main.interrupted_line says what is kept
        summary = profile_until_accuracy(config, out, target=target, round_size=round_size, resume=resume,
                                         on_round=on_round, on_record=on_record, on_status=on_status)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.params.get("as_json"):
        click.echo(json.dumps({"out": str(out), "measured": summary.measured, "rounds": len(summary.rounds),
                               "cv_within_10": summary.cv_within_10, "target": target, "stopped": summary.stopped,
                               "wall_s": summary.wall_s}, indent=2))
    else:
        _adaptive_table(summary, out, target)
    if summary.stopped in ("budget", "time budget") and summary.cv_within_10 < target:
        click.echo(f"the target was not reached within the {summary.stopped}; raise --samples or --time-budget "
                   "and continue with --resume", err=True)


def _adaptive_table(summary, out, target: float) -> None:
    from rich.table import Table

    table = Table(title=f"adaptive profile: {out}", show_header=False)
    table.add_row("measurements in file", str(summary.measured))
    table.add_row("rounds", str(len(summary.rounds)))
    table.add_row("cross-validated within ±10%", f"{summary.cv_within_10:.1%} (target {target:.0%})")
    table.add_row("stopped", summary.stopped)
    table.add_row("wall time", f"{summary.wall_s:.1f} s")
    console().print(table)


@predictor.command()
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False),
              help="Your ed25519 private key (PEM), as written by `hwnas predictor keygen`.")
def sign(bundle, key_path) -> None:
    """Sign BUNDLE in place with an ed25519 key, so that others can check who made it (--trust-key)."""
    from hwnas.signing import sign_bundle

    kid = sign_bundle(bundle, key_path)
    click.echo(f"signed {bundle} with ed25519 key {kid}; share the public key (.pub) with those who load it")


@predictor.command()
@click.option("--out", required=True, help="Key file name without extension: writes OUT.pem (private) and OUT.pub.")
def keygen(out) -> None:
    """Make an ed25519 key pair for signing bundles (the private key stays with you)."""
    from hwnas.signing import generate_keypair

    kid = generate_keypair(f"{out}.pem", f"{out}.pub")
    click.echo(f"wrote {out}.pem (private, keep it) and {out}.pub (public, share it): key {kid}")
