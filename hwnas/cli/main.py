"""Entry point of the ``hwnas`` command.

Subcommands live in their own modules and are imported only when invoked, so
``hwnas --help`` starts without torch. Errors become one line on stderr:
exit code 2 for bad input, 1 for failures while working, 130 on Ctrl-C;
``hwnas --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.util import find_spec

import click

from hwnas import __version__

# name -> "module:attribute". A new command is one module and one line here.
COMMANDS: dict[str, str] = {
    "devices": "hwnas.cli.basic:devices",
    "space": "hwnas.cli.basic:space",
    "profile": "hwnas.cli.profile:profile",
    "predictor": "hwnas.cli.predictor:predictor",
    "predict": "hwnas.cli.predictor:predict",
    "supernet": "hwnas.cli.supernet:supernet",
    "search": "hwnas.cli.search:search",
    "distill": "hwnas.cli.distill:distill",
    "run": "hwnas.cli.run:run",
    "report": "hwnas.cli.report:report",
}

# (command, first argument) -> "module:attribute": a subcommand routed before the command
# parses its options, so that `hwnas profile show FILE` lives beside `hwnas profile --device ...`.
SUBCOMMANDS: dict[tuple[str, str], str] = {
    ("profile", "show"): "hwnas.cli.profile_show:profile_show",
    ("distill", "front"): "hwnas.cli.fleet:distill_front",
}

_SHORT_HELP = {
    "devices": "List device backends, whether each is available here, and why not.",
    "space": "Show or list search spaces.",
    "profile": "Measure sampled architectures on a device into a resumable JSONL file; `profile show FILE` summarises one.",
    "predictor": "Fit, evaluate and inspect portable latency predictors.",
    "predict": "Predict the latency of architectures with a predictor bundle.",
    "supernet": "Train weight-sharing supernets, score and extract sub-networks.",
    "search": "Search for the most accurate students under a latency budget.",
    "distill": "Distill a searched architecture and export it; `distill front DIR` distils a front's top-k in parallel.",
    "run": "The whole pipeline on embedded defaults: profile, fit, train, search, distill.",
    "report": "Build the one-page HTML report of a run folder or of one stage's output.",
}

_state = {"debug": False}


def _module_exists(target: str) -> bool:
    return find_spec(target.partition(":")[0]) is not None


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, target in COMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or not _module_exists(target):
            return None
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        target = SUBCOMMANDS.get((args[0], args[1])) if len(args) >= 2 else None
        if target is not None:
            module, _, attr = target.partition(":")
            return f"{args[0]} {args[1]}", getattr(importlib.import_module(module), attr), args[2:]
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="hwnas")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """hwnas: find, distill and ship the most accurate BERT-like student that fits a latency budget."""
    _state["debug"] = debug or bool(os.environ.get("HWNAS_DEBUG"))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; exits the process."""
    from hwnas.errors import HwnasError

    argv = sys.argv[1:] if argv is None else argv
    _state["debug"] = "--debug" in argv or bool(os.environ.get("HWNAS_DEBUG"))
    try:
        rv = cli.main(args=argv, prog_name="hwnas", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("hwnas: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if _state["debug"]:
            raise
        click.echo(f"hwnas: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except HwnasError as exc:
        if _state["debug"]:
            raise
        click.echo(f"hwnas: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("hwnas: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if _state["debug"]:
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"hwnas: internal error: {type(exc).__name__}: {message} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
