"""Entry point of the ``hwnas`` command.

Subcommands live in their own modules and are imported only when invoked, so
``hwnas --help`` starts without torch. Errors become one line on stderr:
exit code 2 for bad input, 1 for failures while working, 130 on Ctrl-C;
``hwnas --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec

import click

from hwnas import __version__

# name -> "module:attribute". A new command is one module and one line here.
COMMANDS: dict[str, str] = {
    "devices": "hwnas.cli.basic:devices", "space": "hwnas.cli.basic:space", "profile": "hwnas.cli.profile:profile",
    "predictor": "hwnas.cli.predictor:predictor", "predict": "hwnas.cli.predictor:predict",
    "supernet": "hwnas.cli.supernet:supernet", "search": "hwnas.cli.search:search",
    "distill": "hwnas.cli.distill:distill", "run": "hwnas.cli.run:run", "report": "hwnas.cli.report:report",
    "estimator": "hwnas.cli.estimator:estimator",
}

# (command, first argument) -> "module:attribute": a subcommand routed before the command
# parses its options, so that `hwnas profile show FILE` lives beside `hwnas profile --device ...`.
SUBCOMMANDS: dict[tuple[str, str], str] = {
    ("profile", "show"): "hwnas.cli.profile_show:profile_show", ("distill", "front"): "hwnas.cli.fleet:distill_front",
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
    "estimator": "Fit accuracy estimators on a ground-truth table (`estimator fit`).",
}

_state = {"debug": False}

_RESUME = "rerun it with --resume to continue"


def _checkpoint(folder, none: str = "") -> str:
    """What a training folder keeps: ``OUT keeps its checkpoint of step N`` (read from ``checkpoints/latest.json``,
    without torch), or that it holds none yet."""
    import json
    from pathlib import Path

    try:
        name = json.loads((Path(folder) / "checkpoints" / "latest.json").read_text())["checkpoint"]
        return f"{folder} keeps its checkpoint of step {int(str(name).rpartition('-')[2])}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder} holds no checkpoint yet{none}"


# command -> (what it keeps when interrupted, from its parsed options; whether --resume continues it).
# The one place Ctrl-C messages are written: every command ends "hwnas: interrupted: <kept>; <next>", exit 130.
INTERRUPTED: dict[str, tuple] = {
    "profile": (lambda p: f"every completed chunk is saved in {p.get('out')}", True),
    "supernet train": (lambda p: _checkpoint(p.get("out")), True),
    "search": (lambda p: f"every finished evaluation is in {p.get('out')}/evaluated.csv", True),
    "distill": (lambda p: _checkpoint(p.get("out"), " (a fine-tuned teacher is kept in its cache)"), True),
    "distill front": (lambda p: "every finished student is kept", True),
    "run": (lambda p: f"every finished stage is kept in the run folder under {p.get('work_dir')}", True),
    "predictor fit": (lambda p: f"{p.get('out')} was not written", False),
    "supernet extract": (lambda p: f"{p.get('out')} was left as it was", False),
    "report": (lambda p: "no report was written (a page is replaced only once complete)", False),
}


def _command_params(argv: list[str]) -> tuple[str, dict]:
    """The command path (``supernet train``) and parsed options of ``argv``, parsed again without running it."""
    try:
        ctx = cli.make_context("hwnas", list(argv), resilient_parsing=True)
        cmd: click.Command = cli
        args = [*ctx._protected_args, *ctx.args]
        path: list[str] = []
        while isinstance(cmd, click.Group) and args:
            name, sub, args = cmd.resolve_command(ctx, args)
            if sub is None or name is None:
                break
            path.append(name)
            ctx = sub.make_context(name, args, parent=ctx, resilient_parsing=True)
            cmd = sub
            args = [*ctx._protected_args, *ctx.args]
        return " ".join(path), dict(ctx.params)
    except Exception:  # noqa: BLE001 (deliberate: a message must come out whatever argv holds)
        return "", {}


def interrupted_line(argv: list[str]) -> str:
    """The one line printed after Ctrl-C: what the command keeps and how to go on."""
    command, params = _command_params(argv)
    kept, resumable = INTERRUPTED.get(command, (lambda p: "nothing was changed", False))
    try:
        what = kept(params)
    except Exception:  # noqa: BLE001 (deliberate: the Ctrl-C line must come out whatever params hold)
        what = "what was finished is kept"
    return f"hwnas: interrupted: {what}; {_RESUME if resumable else 'rerun it to start again'}"


# errno values that mean "this path cannot be used as given": the user's input, exit code 2.
_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR,
                errno.EEXIST, errno.ENOENT, errno.ELOOP}


def input_error(exc: BaseException) -> tuple[int, str] | None:
    """Exit code and one line for errors that bad input causes deep inside a library, or ``None``.

    The commands check their inputs first; this is the net under them, so that a
    binary file, a number too large or a path that cannot be written never reads
    as an internal error.
    """
    if isinstance(exc, UnicodeDecodeError):
        return 2, "an input file is not UTF-8 text (a binary file given where text, JSON or YAML is expected?)"
    if isinstance(exc, OverflowError):
        return 2, f"a number is too large ({str(exc).strip().splitlines()[0] if str(exc).strip() else 'overflow'})"
    if isinstance(exc, RecursionError):
        return 2, "an input is nested too deeply to read"
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" {exc.filename}" if exc.filename else ""
        reason = exc.strerror or str(exc)
        if exc.errno in _PATH_ERRNOS:
            return 2, f"cannot use{where}: {reason}"
        return 1, f"cannot read or write{where}: {reason}"
    return None


def quiet_libraries() -> None:
    """Silence third-party loggers (transformers' LOAD REPORT and friends) for ``--quiet``."""
    import logging

    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    for name in ("transformers", "accelerate", "datasets", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Every warning raised while a command runs becomes one ``warning: ...`` line, once per message.

    No file names or source lines: those help hwnas's developers, not its users
    (``--debug`` keeps Python's own format). Deprecations inside third-party
    libraries are not the user's to act on and stay hidden, as Python does by default.
    """
    if _state["debug"]:
        yield
        return
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).strip()
        text = text.splitlines()[0] if text else category.__name__
        if text not in seen:
            seen.add(text)
            click.echo(f"warning: {text}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


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
@click.option("--trust-key", "trust_keys", multiple=True, type=click.Path(dir_okay=False),
              help="Only load predictor bundles signed by this ed25519 public key (repeatable; also $HWNAS_TRUST_KEYS).")
def cli(debug: bool, trust_keys: tuple[str, ...]) -> None:
    """hwnas: find, distill and ship the most accurate BERT-like student that fits a latency budget."""
    _state["debug"] = debug or bool(os.environ.get("HWNAS_DEBUG"))
    if trust_keys:
        from hwnas.signing import TRUST_ENV, trusted_keys

        trusted_keys(trust_keys)  # every key readable and ed25519, or one line now
        os.environ[TRUST_ENV] = os.pathsep.join([*filter(None, os.environ.get(TRUST_ENV, "").split(os.pathsep)),
                                                 *map(os.path.abspath, trust_keys)])


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; exits the process."""
    from hwnas.errors import HwnasError

    argv = sys.argv[1:] if argv is None else argv
    _state["debug"] = "--debug" in argv or bool(os.environ.get("HWNAS_DEBUG"))
    if "--quiet" in argv or "-q" in argv:
        quiet_libraries()
    try:
        with one_line_warnings():
            rv = cli.main(args=argv, prog_name="hwnas", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        if _state["debug"]:
            raise
        click.echo(interrupted_line(argv), err=True)
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
    except Exception as exc:
        if _state["debug"]:
            raise
        known = input_error(exc)
        if known is not None:
            code, text = known
            click.echo(f"hwnas: error: {text}", err=True)
            sys.exit(code)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"hwnas: internal error: {type(exc).__name__}: {message} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
