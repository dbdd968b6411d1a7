"""Figure of a search: hypervolume and best feasible score against evaluations (from ``evaluated.csv``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.plots.style import COLORS, figure, finish

__all__ = ["hypervolume_figure", "hypervolume_staircase", "HYPERVOLUME_PNG"]

HYPERVOLUME_PNG = "hypervolume.png"


def hypervolume_staircase(scores: np.ndarray, latencies_ms: np.ndarray, ref_score: float, ref_latency_ms: float) -> float:
    """2-D hypervolume (score maximised, latency minimised) by one sweep over latency (score units x ms)."""
    keep = (scores > ref_score) & (latencies_ms < ref_latency_ms)
    s, lat = scores[keep], latencies_ms[keep]
    if not s.size:
        return 0.0
    order = np.argsort(lat, kind="stable")
    s, lat = s[order], lat[order]
    height = np.maximum.accumulate(s) - ref_score
    widths = np.diff(np.append(lat, ref_latency_ms))
    return float(np.sum(height * widths))


def hypervolume_figure(evaluated: Any, config: Mapping[str, Any] | None = None, *, path: str | Path | None = None) -> bytes:
    """Hypervolume of the feasible front and the best feasible score after each evaluation.

    Args:
        evaluated: ``evaluated.csv`` as a DataFrame (columns ``eval``, ``hypervolume``,
            ``best_feasible_score``, ``feasible``).
        config: the search's ``config.json`` (strategy, budget, space, shape) for the title.

    The hypervolume is in score units x ms (accuracy estimate above the reference
    score times milliseconds saved under the budget). It is recomputed for every
    prefix against one reference, the final one (the lowest feasible score of the
    whole search, and the budget), so that the curve never drops: ``evaluated.csv``'s
    own column uses the reference known at each moment.
    """
    cfg = dict(config or {})
    n = np.asarray(evaluated["eval"], dtype=np.float64)
    score = np.asarray(evaluated["score"], dtype=np.float64)
    lat = np.asarray(evaluated["latency_ms"], dtype=np.float64)
    best = np.asarray(evaluated["best_feasible_score"], dtype=np.float64)
    feas = np.isin(np.asarray(evaluated["feasible"]).astype(str), ["True", "true", "1", "1.0"])
    budget = cfg.get("budget_ms")
    budget = float(budget) if isinstance(budget, (int, float)) else (float(lat[feas].max()) if feas.any() else 1.0)
    ref = float(score[feas].min()) if feas.any() else 0.0
    hv = np.array([hypervolume_staircase(score[:k][feas[:k]], lat[:k][feas[:k]], ref, budget) for k in range(1, len(n) + 1)])
    with figure(width=8.0, height=4.4) as (fig, ax):
        ax.step(n, hv, where="post", color=COLORS["blue"], lw=1.8, label="hypervolume of the feasible front")
        if len(hv) and np.nanmax(hv) > 0:
            final = float(hv[-1])
            ax.axhline(0.99 * final, color=COLORS["grey"], ls=":", lw=1, label="99% of the final hypervolume")
            reach = n[np.argmax(hv >= 0.99 * final)]
            ax.axvline(reach, color=COLORS["grey"], ls=":", lw=1)
            ax.annotate(f"99% after {int(reach)} evaluation{'s' if reach != 1 else ''}", (reach, 0.99 * final), textcoords="offset points",
                        xytext=(6, -14), fontsize=8)
        ax.set_xlabel("evaluations (count)")
        ax.set_ylabel("hypervolume (score units x ms)")
        ax.set_ylim(bottom=0)
        ax2 = ax.twinx()
        ax2.step(n, best, where="post", color=COLORS["orange"], ls="--", lw=1.4, label="best feasible score")
        if (~feas).any():
            ax2.scatter(n[~feas], np.full((~feas).sum(), np.nanmin(best) if np.isfinite(best).any() else 0), marker="|",
                        color=COLORS["vermillion"], s=40, label=f"over budget or a constraint ({int((~feas).sum())})")
        ax2.set_ylabel("best feasible accuracy estimate (score units)", color="0.35")
        ax2.grid(False)
        ax2.spines["right"].set_visible(True)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="lower right")
        where = ", ".join(x for x in (
            cfg.get("device"), f"space {cfg['space']}" if cfg.get("space") else None,
            f"budget {cfg['budget_ms']:g} ms" if isinstance(cfg.get("budget_ms"), (int, float)) else None,
            f"seq {cfg.get('seq_len')}, batch {cfg.get('batch_size')}" if cfg.get("seq_len") else None) if x)
        ax.set_title(f"Search progress: {cfg.get('strategy', '?')}, {len(n)} evaluations" + (f"\n{where}" if where else ""))
        return finish(fig, path)
