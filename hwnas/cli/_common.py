"""Parsing helpers and output shared by the CLI commands."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from hwnas.errors import InvalidConfig

_DURATION_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "ms": 1e-3}
_LATENCY_UNITS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3, "ns": 1e-6}


def parse_duration_s(text: str, *, what: str = "duration") -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"`` -> seconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(text).lower())
    if not m or (m.group(2) and m.group(2) not in _DURATION_UNITS):
        raise InvalidConfig(f"{what} must be a number with an optional unit s, m or h (e.g. 30m); got {text!r}")
    value = float(m.group(1)) * _DURATION_UNITS.get(m.group(2) or "s", 1.0)
    if not value > 0 or not math.isfinite(value) or value > 1e7:
        raise InvalidConfig(f"{what} must be positive and at most 1e7 s (about 4 months); got {str(text)[:40]!r}")
    return value


def parse_latency_ms(text: str, *, what: str = "latency") -> float:
    """``"5ms"``, ``"800us"``, ``"0.005s"`` -> milliseconds. A bare number is milliseconds."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(ms|us|µs|s|ns)?\s*", str(text).lower())
    if not m:
        raise InvalidConfig(f"{what} must be a number with a unit ms, us or s (e.g. 5ms, 800us, 0.005s); got {text!r}")
    value = float(m.group(1)) * _LATENCY_UNITS[m.group(2) or "ms"]
    if not value > 0 or not math.isfinite(value) or value > 1e9:
        raise InvalidConfig(f"{what} must be positive and finite (at most 1e9 ms); got {str(text)[:40]!r}")
    return value


def parse_int_list(text, *, what: str) -> tuple[int, ...]:
    """``"64,128"`` -> ``(64, 128)``: :func:`hwnas.cli._options.parse_int_list` (the one list syntax)."""
    from hwnas.cli._options import parse_int_list as parse

    return parse(text, what)


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value < 1:
        return f"{value * 1e3:.0f} us"
    if value < 100:
        return f"{value:.3g} ms"
    return f"{value:.0f} ms"


def fmt_s(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def echo_kv(rows: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k.ljust(width)}  {v}")


@contextmanager
def one_line_warnings(*categories: type[Warning]) -> Iterator[None]:
    """Show warnings of ``categories`` as one ``warning: ...`` line on stderr each, once per message."""
    seen: set[str] = set()
    with warnings.catch_warnings():
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, categories):
                text = str(message)
                if text not in seen:
                    seen.add(text)
                    click.echo(f"warning: {text}", err=True)
                return
            previous(message, category, filename, lineno, file, line)

        for category in categories:
            warnings.simplefilter("always", category)
        warnings.showwarning = show
        yield
