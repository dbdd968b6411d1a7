"""Figures of a latency predictor: parity, residuals, and a bundle's stored metrics and domain."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.plots.style import COLORS, MARKERS, figure, log_ticks, finish, where

__all__ = ["parity_figure", "residuals_figure", "bundle_figure", "write_predictor_plots", "manifest_where"]


def manifest_where(manifest: Mapping[str, Any]) -> str:
    """``"cpu, 1 thread, seq 128, batch 1"`` from a bundle manifest."""
    dev = manifest.get("device") or {}
    dom = manifest.get("domain") or {}
    shapes = [(s["seq_len"], s["batch_size"]) for s in dom.get("shapes") or []]
    return where(dev.get("name"), dev.get("threads"), shapes=shapes)


def _draw_parity(ax: Any, measured: np.ndarray, predicted: np.ndarray, upper_factor: float | None, coverage: float | None,
                 label: str) -> None:
    lo = float(min(measured.min(), predicted.min())) / 1.15
    hi = float(max(measured.max(), predicted.max())) * 1.15
    line = np.geomspace(lo, hi, 50)
    ax.fill_between(line, line * 0.90, line * 1.10, color=COLORS["sky"], alpha=0.18, lw=0, label="±10%")
    ax.fill_between(line, line * 0.95, line * 1.05, color=COLORS["sky"], alpha=0.35, lw=0, label="±5%")
    ax.plot(line, line, color=COLORS["black"], lw=0.9, label="predicted = measured")
    if upper_factor:
        ax.plot(line, line / upper_factor, color=COLORS["vermillion"], lw=1.1, ls="--",
                label=f"upper bound = measured ({coverage:.0%} bound, x{upper_factor:.3f});\npoints below it exceed the bound"
                if coverage else f"upper bound = measured (x{upper_factor:.3f})")
    err = np.abs(predicted / measured - 1)
    inside = err <= 0.10
    ax.scatter(measured[inside], predicted[inside], s=16, color=COLORS["blue"], marker=MARKERS[0], alpha=0.8,
               label=f"{label}, within ±10% ({int(inside.sum())})", zorder=3)
    if (~inside).any():
        ax.scatter(measured[~inside], predicted[~inside], s=22, color=COLORS["orange"], marker=MARKERS[2],
                   label=f"{label}, outside ±10% ({int((~inside).sum())})", zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    log_ticks(ax)
    ax.set_xlabel("measured latency (ms, log scale)")
    ax.set_ylabel("predicted latency (ms, log scale)")
    ax.legend(loc="upper left", fontsize=6.5)


def _metrics_text(measured: np.ndarray, predicted: np.ndarray, upper_factor: float | None) -> str:
    rel = predicted / measured - 1
    lines = [f"n = {measured.size}",
             f"within ±5%: {np.mean(np.abs(rel) <= 0.05):.1%}",
             f"within ±10%: {np.mean(np.abs(rel) <= 0.10):.1%}",
             f"MAPE: {np.mean(np.abs(rel)):.2%}"]
    if upper_factor:
        lines.append(f"below upper bound: {np.mean(measured <= predicted * upper_factor):.1%}")
    return "\n".join(lines)


def parity_figure(measured: Sequence[float], predicted: Sequence[float], *, upper_factor: float | None = None,
                  coverage: float | None = None, kind: str = "out-of-fold", where_text: str = "",
                  path: str | Path | None = None) -> bytes:
    """Predicted against measured latency (ms, log axes) with ±5%/±10% bands and the upper bound.

    Args:
        measured, predicted: latencies in ms, one per measurement.
        upper_factor: the upper bound's multiplier of the prediction (``exp(log_margin)``).
        kind: what the points are ("out-of-fold", "held-out"), shown in the legend and title.
        path: where to write the PNG (written atomically); the PNG bytes are returned either way.
    """
    y = np.asarray(measured, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    with figure(width=6.4, height=6.0) as (fig, ax):
        _draw_parity(ax, y, p, upper_factor, coverage, kind)
        ax.text(0.98, 0.03, _metrics_text(y, p, upper_factor), transform=ax.transAxes, ha="right", va="bottom",
                fontsize=8, family="monospace", bbox=dict(boxstyle="round", fc="white", ec="0.7", alpha=0.9))
        ax.set_title(f"Latency predictor parity, {kind} points\n{where_text}".strip())
        return finish(fig, path)


def residuals_figure(measured: Sequence[float], predicted: Sequence[float], X: np.ndarray, inputs: Sequence[str], *,
                     kind: str = "out-of-fold", where_text: str = "", path: str | Path | None = None) -> bytes:
    """Relative error (%) against measured latency and against every input, plus its histogram."""
    y = np.asarray(measured, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64).reshape(len(y), -1)
    rel = 100.0 * (p / y - 1)
    # an input that never varies says nothing about where the errors come from: named, not drawn
    constant = [c for j, c in enumerate(inputs) if np.all(X[:, j] == X[0, j])]
    panels = ["latency", *(c for c in inputs if c not in constant)]
    ncols = min(4, len(panels) + 1)
    nrows = math.ceil((len(panels) + 1) / ncols)
    units = {"layers": "count", "hidden": "units", "heads": "count", "ffn": "units", "seq_len": "tokens",
             "batch_size": "sequences"}
    lim = max(12.0, float(np.max(np.abs(rel))) * 1.1)
    with figure(ncols, nrows, width=11.0, height=2.6 * nrows + 0.6) as (fig, axes):
        flat = np.atleast_1d(axes).ravel()
        # the grid has more axes than panels: the next one holds the histogram, the rest are hidden
        for ax, name in zip(flat, panels, strict=False):
            x = y if name == "latency" else X[:, list(inputs).index(name)]
            ax.axhspan(-10, 10, color=COLORS["sky"], alpha=0.18, lw=0)
            ax.axhspan(-5, 5, color=COLORS["sky"], alpha=0.35, lw=0)
            ax.axhline(0, color=COLORS["black"], lw=0.8)
            ax.scatter(x, rel, s=12, color=COLORS["blue"], alpha=0.8)
            if name == "latency":
                ax.set_xscale("log")
                log_ticks(ax, "x")
                ax.set_xlabel("measured latency (ms, log scale)")
            else:
                from matplotlib.ticker import MaxNLocator

                col = X[:, list(inputs).index(name)]
                if np.all(col == np.round(col)):
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
                ax.set_xlabel(f"{name} ({units.get(name, 'input units')})")
            ax.set_ylim(-lim, lim)
            ax.set_ylabel("relative error (%)")
        hist_ax = flat[len(panels)]
        hist_ax.hist(rel, bins=min(30, max(5, len(rel) // 3)), color=COLORS["blue"], alpha=0.85, orientation="horizontal")
        hist_ax.axhspan(-5, 5, color=COLORS["sky"], alpha=0.35, lw=0)
        hist_ax.set_ylim(-lim, lim)
        hist_ax.set_xlabel("measurements (count)")
        hist_ax.set_ylabel("relative error (%)")
        for ax in flat[len(panels) + 1:]:
            ax.set_visible(False)
        fixed = ", ".join(f"{c}={X[0, list(inputs).index(c)]:g}" for c in constant)
        fig.suptitle(f"Latency predictor residuals (predicted / measured - 1), {kind} points, n = {len(y)}"
                     + (f"\n{where_text}" if where_text else "") + (f" (constant: {fixed})" if fixed else ""))
        return finish(fig, path)


def bundle_figure(manifest: Mapping[str, Any], *, path: str | Path | None = None) -> bytes:
    """A bundle's stored cross-validated metrics, training domain and latency range."""
    cv = (manifest.get("metrics") or {}).get("cv") or {}
    dom = manifest.get("domain") or {}
    ranges = dom.get("ranges") or {}
    unc = manifest.get("uncertainty") or {}
    with figure(3, 1, width=12.0, height=4.0, gridspec_kw={"width_ratios": [1.0, 1.4, 1.0]}) as (fig, (a1, a2, a3)):
        names = [("within_5", "within ±5%"), ("within_10", "within ±10%"), ("upper_coverage", "below upper bound")]
        vals = [100 * float(cv[k]) if k in cv else float("nan") for k, _ in names]
        bars = a1.bar([n for _, n in names], vals, color=[COLORS["blue"], COLORS["green"], COLORS["vermillion"]])
        for b, v in zip(bars, vals, strict=True):
            a1.text(b.get_x() + b.get_width() / 2, (0 if math.isnan(v) else v) + 1.5, "not stored" if math.isnan(v) else f"{v:.1f}%",
                    ha="center", fontsize=8)
        a1.set_ylim(0, 110)
        a1.set_ylabel("share of measurements (%)")
        extra = []
        if "mape" in cv:
            extra.append(f"MAPE {100 * cv['mape']:.2f}%")
        if "kendall_tau" in cv:
            extra.append(f"Kendall tau {cv['kendall_tau']:.3f}")
        folds = (manifest.get("metrics") or {}).get("cv_folds")
        a1.set_title(f"cross-validated ({folds} folds), n = {cv.get('n', '?')}" + ("\n" + ", ".join(extra) if extra else ""),
                     fontsize=9)
        a1.tick_params(axis="x", labelsize=7.5)
        # domain: one bar per input from its minimum to its maximum (log scale: the inputs span decades)
        keys = list(ranges)
        for i, k in enumerate(keys):
            lo, hi = ranges[k]
            a2.plot([lo, hi], [i, i], color=COLORS["blue"], lw=6, solid_capstyle="butt")
            a2.plot([lo, hi], [i, i], "|", color=COLORS["black"], ms=12)
            a2.text(hi * 1.15, i, f"{lo:g}..{hi:g}", va="center", fontsize=8)
        a2.set_yticks(range(len(keys)), keys)
        a2.set_xscale("log")
        log_ticks(a2, "x")
        a2.set_xlim(0.7, max([r[1] for r in ranges.values()] or [10]) * 8)
        a2.set_ylim(-0.7, len(keys) - 0.3)
        a2.invert_yaxis()
        a2.set_xlabel("input value (count: layers, heads; units: hidden, ffn; tokens; sequences), log scale")
        a2.set_title(f"training domain ({dom.get('n_samples', '?')} measurements)", fontsize=9)
        lat = dom.get("latency_ms") or [float("nan"), float("nan")]
        a3.plot([lat[0], lat[1]], [0, 0], color=COLORS["green"], lw=8, solid_capstyle="butt", label="measured range")
        if unc.get("log_margin") is not None:
            f = math.exp(float(unc["log_margin"]))
            a3.plot([lat[0] * f, lat[1] * f], [1, 1], color=COLORS["vermillion"], lw=8, solid_capstyle="butt",
                    label=f"upper bound ({unc.get('coverage', 0):.0%}), x{f:.3f}")
        a3.set_yticks([0, 1], ["measured", "upper bound"])
        a3.set_ylim(-0.8, 1.8)
        a3.set_xlabel("latency (ms)")
        a3.set_title(f"latency range: {lat[0]:.3g}-{lat[1]:.3g} ms", fontsize=9)
        a3.legend(loc="upper center", fontsize=7)
        fig.suptitle(f"Predictor bundle ({manifest.get('kind', '?')}), {manifest_where(manifest)}, space {manifest.get('space')}")
        return finish(fig, path)


def plot_paths(plot: str | Path | None, default_stem: Path) -> tuple[Path, Path]:
    """(parity, residuals) PNG paths: ``--plot P.png`` gives ``P.png`` and ``P-residuals.png``;
    without it, ``<stem>.parity.png`` and ``<stem>.residuals.png`` beside ``default_stem``."""
    if plot:
        p = Path(plot)
        if p.suffix.lower() != ".png":
            from hwnas.errors import InvalidConfig

            raise InvalidConfig(f"--plot must be a .png path (the residual plot goes beside it as NAME-residuals.png); got {str(plot)!r}")
        return p, p.with_name(p.stem + "-residuals.png")
    return default_stem.with_name(default_stem.name + ".parity.png"), default_stem.with_name(default_stem.name + ".residuals.png")


def write_predictor_plots(measured: Sequence[float], predicted: Sequence[float], X: np.ndarray, inputs: Sequence[str],
                          manifest: Mapping[str, Any], parity_path: Path, residuals_path: Path, *, kind: str) -> list[Path]:
    """Parity and residual plots of ``predicted`` against ``measured``; returns the two paths."""
    unc = manifest.get("uncertainty") or {}
    factor = math.exp(float(unc["log_margin"])) if unc.get("log_margin") is not None else None
    w = manifest_where(manifest)
    parity_figure(measured, predicted, upper_factor=factor, coverage=unc.get("coverage"), kind=kind, where_text=w,
                  path=parity_path)
    residuals_figure(measured, predicted, X, inputs, kind=kind, where_text=w, path=residuals_path)
    return [parity_path, residuals_path]
