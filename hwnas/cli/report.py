"""``hwnas report PATH``: (re)build the one-page HTML report of a run or of one stage's output."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("path", type=click.Path())
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Where to write the page. [default: PATH/report.html for a folder, PATH.report.html for a file]")
@click.option("--json", "as_json", is_flag=True,
              help="Print what was written (path, kind, figures, what is missing) as one JSON object.")
def report(path: str, out: str | None, as_json: bool) -> None:
    """Build one self-contained HTML page (images embedded, nothing fetched) for a run folder
    or one stage's output: a profile (.jsonl), a predictor (.hwnas), a supernet, search or student folder.

    A partial run is reported with what exists; the command then names what is missing and exits with code 2.

    \b
    Examples:
      hwnas report hwnas-runs/cpu-5ms
      hwnas report hwnas-runs/cpu-5ms/search --out /tmp/search.html
      hwnas report profiles/cpu.jsonl
    """
    from hwnas.errors import InvalidConfig, InvalidData
    from hwnas.report import write_report

    from pathlib import Path

    from hwnas.outputs import check_not_input, check_output_file
    from hwnas.report.build import default_output

    if not Path(path).exists():
        raise InvalidData(f"PATH {path} does not exist; give a run folder or one stage's output")
    target = Path(out) if out is not None else default_output(path)
    try:
        check_output_file(target, option="--out", replace=True, owned=_is_report, what="report")
    except InvalidConfig as exc:
        raise InvalidConfig(f"cannot write the report: {exc}") from None
    check_not_input(target, [("PATH", path)])
    r = write_report(path, out)
    if as_json:
        import json

        click.echo(json.dumps({"report": str(r.path), "source": str(path), "kind": r.kind, "figures": r.figures,
                               "bytes": len(r.html.encode("utf-8")), "complete": r.complete,
                               "missing": list(r.missing), "broken": dict(r.broken)}, indent=2))
    else:
        click.echo(f"wrote {r.path} ({r.kind}, {r.figures} figure(s) embedded, {len(r.html) / 1e6:.1f} MB)")
    if not r.complete:
        what = [f"missing {', '.join(r.missing)}"] if r.missing else []
        what += [f"half-written {', '.join(f'{k} ({v})' for k, v in r.broken.items())}"] if r.broken else []
        raise InvalidData(f"{path} is an incomplete {r.kind}: {'; '.join(what)}; the report shows what exists")


def _is_report(path) -> bool:
    """An HTML page hwnas wrote (only those are ever replaced)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.lstrip().lower().startswith(b"<!doctype html>") and b"hwnas" in head
