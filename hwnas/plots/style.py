"""The one look of every hwnas figure.

* matplotlib's non-interactive ``Agg`` backend: no display, no window, safe in CI
  and on servers; selected before pyplot is imported.
* The Okabe-Ito palette (Okabe and Ito, "Color Universal Design", 2008): eight
  colours that stay distinct under the common colour-vision deficiencies.
  Series are also told apart by marker or line style, never by colour alone.
* Units in every axis label, and titles that say what is shown and where
  (device, threads, input shape).
* PNG at a fixed size and resolution; files are written atomically (a
  temporary file renamed into place), so a killed run never leaves a torn image.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["PALETTE", "COLORS", "MARKERS", "pyplot", "figure", "save", "png_bytes", "finish", "where", "log_ticks"]

#: Okabe-Ito, in the order series take them (black is kept for reference lines).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
COLORS = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "purple": "#CC79A7", "sky": "#56B4E9", "yellow": "#F0E442", "black": "#000000", "grey": "#999999",
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

DPI = 110
_RC = {
    "axes.prop_cycle": None,  # set in pyplot()
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7.5,
    "legend.framealpha": 0.85,
    "figure.titlesize": 11,
    "figure.titleweight": "bold",
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "font.family": "DejaVu Sans",
}


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend with the hwnas style applied."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from cycler import cycler

    rc = dict(_RC)
    rc["axes.prop_cycle"] = cycler(color=list(PALETTE))
    plt.rcParams.update(rc)
    return plt


@contextmanager
def figure(ncols: int = 1, nrows: int = 1, *, width: float = 7.0, height: float = 4.2, dpi: int = DPI,
           **kw: Any) -> Iterator[tuple[Any, Any]]:
    """A styled ``(fig, axes)`` that is always closed, even when drawing fails."""
    plt = pyplot()
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), dpi=dpi, **kw)
    try:
        yield fig, axes
    finally:
        plt.close(fig)


def where(device: Any = None, threads: Any = None, seq_len: Any = None, batch_size: Any = None,
          shapes: Any = None) -> str:
    """``"cpu, 1 thread, seq 128, batch 1"``: the 'where' half of a title (unknown parts left out)."""
    parts = []
    if device:
        parts.append(str(device))
    if isinstance(threads, int):
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    if seq_len is not None and batch_size is not None:
        parts.append(f"seq {seq_len}, batch {batch_size}")
    elif shapes:
        shapes = list(shapes)
        if len(shapes) == 1:
            s, b = shapes[0]
            parts.append(f"seq {s}, batch {b}")
        else:
            parts.append(f"{len(shapes)} shapes")
    return ", ".join(parts)


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (for embedding in a report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def save(fig: Any, path: str | Path, data: bytes | None = None) -> Path:
    """Write ``fig`` (or its PNG ``data``) to ``path`` atomically and durably (:func:`hwnas._files.atomic_write_bytes`).

    Raises:
        InvalidConfig: the folder does not exist or is not writable (one line, exit code 2).
    """
    from hwnas._files import atomic_write_bytes
    from hwnas.errors import InvalidConfig

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InvalidConfig(f"plot paths must end in .png; got {str(path)!r}")
    if not path.parent.is_dir():
        raise InvalidConfig(f"cannot write the plot {path}: its folder does not exist; choose a writable path")
    try:
        return atomic_write_bytes(path, png_bytes(fig) if data is None else data)
    except OSError as exc:
        raise InvalidConfig(f"cannot write the plot {path}: {exc.strerror or exc}; choose a writable path") from None


def finish(fig: Any, path: str | Path | None = None) -> bytes:
    """Lay ``fig`` out and return its PNG bytes, also written to ``path`` when given (:func:`save`)."""
    fig.tight_layout()
    data = png_bytes(fig)
    if path is not None:
        save(fig, path, data)
    return data

def log_ticks(ax: Any, axis: str = "both") -> None:
    """Plain-number ticks at 1, 2, 3, 5 x 10^k on log axes (no 4x10^1 labels, no crowded minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def fmt(v: float, _pos: Any) -> str:
        return f"{v:g}"

    axes = ("x", "y") if axis == "both" else (axis,)
    for name in axes:
        a = ax.xaxis if name == "x" else ax.yaxis
        a.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
        a.set_major_formatter(FuncFormatter(fmt))
        a.set_minor_formatter(NullFormatter())
