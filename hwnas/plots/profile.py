"""Figure of a profile: latency against FLOPs and parameters, coloured by layers, noisy records marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.plots.style import COLORS, MARKERS, PALETTE, figure, log_ticks, finish, where

__all__ = ["profile_figure"]


def profile_figure(records: Sequence[dict[str, Any]], *, title_path: str = "", path: str | Path | None = None) -> bytes:
    """Latency (ms) against FLOPs and against parameters, one colour per layer count; noisy records hollow.

    FLOPs are the analytic count of :mod:`hwnas.predictors.features` (``total_flops``) at each
    record's own shape, so records of several shapes share the left panel; the right panel
    (parameters) does not depend on the shape.
    """
    from hwnas.predictors.features import INPUTS, featurize

    x = np.array([[r[k] for k in INPUTS] for r in records], dtype=np.float64)
    flops = featurize(x, ["total_flops"])[:, 0]
    lat = np.array([r["latency_ms"] for r in records], dtype=np.float64)
    params = np.array([r.get("params") or np.nan for r in records], dtype=np.float64)
    layers = np.array([int(r["layers"]) for r in records])
    noisy = np.array([bool(r.get("noisy")) for r in records])
    devs = sorted({str(r.get("device")) for r in records})
    threads = {r.get("threads") for r in records}
    shapes = sorted({(r.get("seq_len"), r.get("batch_size")) for r in records})
    uniq = sorted(set(layers.tolist()))
    if len(uniq) <= len(PALETTE) - 1:
        colour = {n: PALETTE[i] for i, n in enumerate(uniq)}
    else:  # more layer counts than safe colours: viridis, which is also colour-blind safe
        from matplotlib import colormaps

        cmap = colormaps["viridis"]
        colour = {n: cmap(i / max(1, len(uniq) - 1)) for i, n in enumerate(uniq)}
    with figure(2, 1, width=11.0, height=4.6) as (fig, axes):
        for ax, xs, xlabel in ((axes[0], flops / 1e9, "FLOPs per inference (GFLOP, analytic, log scale)"),
                               (axes[1], params / 1e6, "parameters (millions, log scale)")):
            for n in uniq:
                for d_i, d in enumerate(devs):
                    m = (layers == n) & np.array([str(r.get("device")) == d for r in records])
                    ok = m & ~noisy
                    label = f"{n} layer{'s' if n != 1 else ''}" + (f", {d}" if len(devs) > 1 else "")
                    ax.scatter(xs[ok], lat[ok], s=18, color=colour[n], marker=MARKERS[d_i % len(MARKERS)], alpha=0.85,
                               label=label if ok.any() else None)
                    bad = m & noisy
                    if bad.any():  # labelled here when every record of this colour is noisy
                        ax.scatter(xs[bad], lat[bad], s=30, facecolors="none", edgecolors=colour[n], linewidths=1.2,
                                   marker=MARKERS[d_i % len(MARKERS)], label=None if ok.any() else label)
            if noisy.any():
                ax.scatter([], [], s=30, facecolors="none", edgecolors=COLORS["black"], label=f"noisy, hollow ({int(noisy.sum())})")
            ax.set_xscale("log")
            ax.set_yscale("log")
            log_ticks(ax)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("measured latency (ms, median, log scale)")
        axes[1].legend(loc="upper left", fontsize=7, ncol=1 if len(uniq) < 7 else 2, title="colour: layers", title_fontsize=7)
        w = where(", ".join(devs), next(iter(threads)) if len(threads) == 1 else None, shapes=[s for s in shapes])
        fig.suptitle(f"Profile{(' ' + title_path) if title_path else ''}: {len(records)} records, {w}")
        return finish(fig, path)
