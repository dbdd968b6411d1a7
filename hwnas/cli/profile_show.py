"""``hwnas profile show FILE``: what an existing profile holds, and optionally a plot of it.

Routed from :mod:`hwnas.cli.main` (``SUBCOMMANDS``), so ``hwnas profile --device ...``
keeps its own options untouched.
"""

from __future__ import annotations

import json

import click


@click.command("profile show")
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--plot", "plot_path", is_flag=False, flag_value="-", default=None, type=click.Path(dir_okay=False),
              help="Draw latency against FLOPs and parameters: --plot (beside FILE as FILE.png) or --plot PATH.png.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def profile_show(file: str, plot_path: str | None, as_json: bool) -> None:
    """Summarise a profile written by `hwnas profile`: records, devices, shapes, spread, noise, drift.

    \b
    Examples:
      hwnas profile show profiles/cpu.jsonl
      hwnas profile show profiles/cpu.jsonl --plot              # profiles/cpu.png
      hwnas profile show profiles/cpu.jsonl --plot /tmp/cpu-profile.png
    """
    from pathlib import Path

    from hwnas.profiling.summary import load_profile_records, summarize_profile

    if plot_path not in (None, "-") and not str(plot_path).lower().endswith(".png"):
        from hwnas.errors import InvalidConfig

        raise InvalidConfig(f"--plot must be a .png path; got {plot_path!r}")
    summary = summarize_profile(file)
    quality = _quality(file)
    if as_json:
        click.echo(json.dumps({**summary.to_dict(), **quality}, indent=2))
    else:
        from hwnas.cli._common import echo_kv

        echo_kv([*summary.rows(), ("data quality", f"{quality['duplicates']} exact duplicate(s), "
                                                  f"{quality['twin_outliers']} record(s) >10x from a twin, "
                                                  f"{quality['physics_outliers']} >5x from the physical cost model")])
    if plot_path is not None:
        from hwnas.plots.profile import profile_figure

        target = Path(file).with_suffix(".png") if plot_path == "-" else Path(plot_path)
        records, _ = load_profile_records(file)
        profile_figure(records, title_path=Path(file).name, path=target)
        click.echo(f"plot: {target}", err=as_json)


def _quality(file: str) -> dict[str, int]:
    """Duplicates and gross outliers (against twins, against the physics model), as counted on load."""
    from hwnas.profiling.summary import load_profile_records
    from hwnas.validate import check_profile_quality

    records, _ = load_profile_records(file)
    q = check_profile_quality(records, where=str(file))  # its warnings say the same in one line each
    return {"duplicates": q.duplicates, "twin_outliers": len(q.outliers), "physics_outliers": len(q.physics_outliers)}
