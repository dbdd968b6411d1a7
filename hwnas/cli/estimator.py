"""``hwnas estimator``: fit accuracy estimators that learn from a ground-truth table."""

from __future__ import annotations

import click


@click.group("estimator")
def estimator() -> None:
    """List the accuracy estimators; fit those that learn from a ground-truth table (see docs/estimators.md)."""


@estimator.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def list_estimators(as_json: bool) -> None:
    """The registered accuracy estimators: what each needs, what it computes, and the settings
    `hwnas search --estimator-option KEY=VALUE` can give it (with their defaults)."""
    import inspect

    from hwnas.estimators import ESTIMATORS
    from hwnas.estimators.base import REQUIREMENT_FLAGS, estimator_options

    rows = []
    for name in ESTIMATORS.names():
        cls = ESTIMATORS.get(name)
        opts = {k: (None if v is inspect.Parameter.empty else v) for k, v in estimator_options(name).items()}
        rows.append({"name": name, "needs": sorted(cls.requires), "description": cls.description,
                     "options": {k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
                                 for k, v in opts.items()}})
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        needs = ", ".join(REQUIREMENT_FLAGS.get(n, f"--{n}") for n in r["needs"]) or "nothing"
        click.echo(f"{r['name']:16s} needs {needs}: {r['description']}")
        if r["options"]:
            click.echo(" " * 17 + "options: " + ", ".join(f"{k}={v}" for k, v in r["options"].items()))


@estimator.command("fit")
@click.option("--table", required=True, type=click.Path(dir_okay=False),
              help="Ground-truth CSV (bench/ground_truth/table.csv): students distilled with one recipe, in latency bands.")
@click.option("--task", required=True, help="Task column value to fit on, e.g. sst2.")
@click.option("--space", default=None,
              help="Space of the students to fit on (name or file) [default: the table's only space for --task].")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the fitted model (model.json + manifest.json); never overwritten without --overwrite.")
@click.option("--overwrite", is_flag=True, help="Replace the learned estimator already in --out.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds XGBoost.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest of the fitted model as JSON.")
def fit(table: str, task: str, space: str | None, out: str, overwrite: bool, seed: int, as_json: bool) -> None:
    """Fit the `learned` estimator: an XGBoost pairwise ranker, one query group per latency band.

    \b
    Examples:
      hwnas estimator fit --table bench/ground_truth/table.csv --task sst2 --out models/learned-sst2
      hwnas search --estimator learned --estimator-path models/learned-sst2 --predictor cpu.hwnas ...
    """
    from hwnas.estimators.learned import LearnedRanker, fit_learned
    from hwnas.outputs import check_not_input

    check_not_input(out, [("--table", table)])
    result = fit_learned(table, task=task, space=space, out=out, overwrite=overwrite, ranker=LearnedRanker(seed=seed))
    if as_json:
        import json

        click.echo(json.dumps(result.manifest, indent=1))
        return
    m = result.manifest
    click.echo(f"fitted learned estimator on {result.students} students in {result.bands} bands "
               f"(task {', '.join(m['tasks'])}, space {m['space']['name']}) in {result.fit_s:.2f} s; wrote {result.out}")
