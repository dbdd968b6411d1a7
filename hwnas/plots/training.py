"""Training curves drawn from what training already writes.

* Supernets: ``train_log.jsonl`` (one line per step: the loss of the largest and the
  smallest student of the sandwich and the mean over all of them); the sampled
  students' mean is recovered as ``(mean * n - largest - smallest) / (n - 2)``.
* Distillation: ``report.json``'s ``training.distill.curve`` (every 10th step's
  total and per-loss values, and any periodic evaluation) and the final scores.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import InvalidData
from hwnas.plots.style import COLORS, figure, finish

__all__ = ["read_supernet_log", "supernet_figure", "distill_figure", "write_supernet_plot", "write_distill_plot"]

SUPERNET_PNG = "training.png"
DISTILL_PNG = "training.png"


def read_supernet_log(folder: str | Path) -> list[dict[str, Any]]:
    """The steps of ``folder/train_log.jsonl`` (a torn last line is skipped).

    Raises:
        InvalidData: no log, or no complete step in it.
    """
    path = Path(folder) / "train_log.jsonl"
    if not path.is_file():
        raise InvalidData(f"{folder} has no train_log.jsonl (is it a supernet folder written by `hwnas supernet train`?)")
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break  # an interrupted write
            raise InvalidData(f"{path}: line {i + 1} is not JSON") from None
    if not out:
        raise InvalidData(f"{path} holds no training steps yet")
    return out


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or y.size < k:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def supernet_figure(steps: list[dict[str, Any]], meta: Mapping[str, Any] | None = None, *,
                    path: str | Path | None = None) -> bytes:
    """Distillation loss of the largest, smallest and sampled students per step (and the learning rate)."""
    meta = meta or {}
    step = np.array([s["step"] + 1 for s in steps], dtype=np.float64)
    largest = np.array([s["largest"] for s in steps], dtype=np.float64)
    smallest = np.array([s["smallest"] for s in steps], dtype=np.float64)
    n = np.array([len(s.get("archs") or []) for s in steps])
    mean = np.array([s["mean"] for s in steps], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        sampled = np.where(n > 2, (mean * n - largest - smallest) / np.maximum(n - 2, 1), np.nan)
    k = max(1, len(steps) // 25)
    with figure(width=8.0, height=4.4) as (fig, ax):
        for y, name, colour, ls in ((largest, "largest student", COLORS["blue"], "-"),
                                    (smallest, "smallest student", COLORS["orange"], "--"),
                                    (sampled, "sampled students (mean)", COLORS["green"], ":")):
            if np.all(np.isnan(y)):
                continue
            ax.plot(step, y, color=colour, alpha=0.25, lw=0.8)
            ax.plot(step, _smooth(y, k), color=colour, lw=1.8, ls=ls,
                    label=name + (f" ({k}-step moving mean)" if k > 1 else ""))
        ax.set_xlabel("training step (count)")
        ax.set_ylabel("distillation loss (MiniLM-v2 relations, nats)")
        if "lr" in steps[0]:
            ax2 = ax.twinx()
            ax2.plot(step, [s["lr"] for s in steps], color=COLORS["grey"], lw=0.9, ls="-.", label="learning rate")
            ax2.set_ylabel("learning rate (dimensionless)", color="0.4")
            ax2.tick_params(axis="y", labelcolor="0.4", labelsize=7)
            ax2.grid(False)
            ax2.spines["right"].set_visible(True)
            h1, l1 = ax.get_legend_handles_labels()
            h2, l2 = ax2.get_legend_handles_labels()
            ax.legend(h1 + h2, l1 + l2, loc="upper right")
        else:
            ax.legend(loc="upper right")
        space = meta.get("space")
        space = space.get("name") if isinstance(space, Mapping) else space
        cfg = meta.get("train") or meta.get("config") or {}
        where = ", ".join(str(x) for x in (
            f"space {space}" if space else None,
            f"batch {cfg.get('batch_size')}" if cfg.get("batch_size") else None,
            f"seq {cfg.get('seq_len')}" if cfg.get("seq_len") else None,
            f"teacher {meta.get('teacher')}" if meta.get("teacher") else None) if x)
        ax.set_title(f"Supernet training, {len(steps)} steps" + (f"\n{where}" if where else ""))
        return finish(fig, path)


def _supernet_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "supernet.json").read_text())
    except (OSError, ValueError):
        return {}


def write_supernet_plot(folder: str | Path) -> Path:
    """Draw ``folder/training.png`` from ``folder/train_log.jsonl``."""
    folder = Path(folder)
    target = folder / SUPERNET_PNG
    supernet_figure(read_supernet_log(folder), _supernet_meta(folder), path=target)
    return target


def distill_figure(report: Mapping[str, Any], *, path: str | Path | None = None) -> bytes:
    """Task and distillation losses over the steps, and evaluation scores (student and teacher)."""
    training = report.get("training") or {}
    curve = (training.get("distill") or {}).get("curve") or []
    if not curve:
        raise InvalidData("the distillation report holds no training curve (training.distill.curve)")
    loss_rows = [r for r in curve if "loss" in r]
    eval_rows = [r for r in curve if any(k.startswith("eval_") for k in r)]
    metric = report.get("metric", "accuracy")
    keys = [k for k in dict.fromkeys(k for r in loss_rows for k in r) if k not in ("step",)]
    styles = ["-", "--", ":", "-."]
    palette = [COLORS["black"], COLORS["blue"], COLORS["orange"], COLORS["green"], COLORS["vermillion"], COLORS["purple"]]
    with figure(2, 1, width=11.0, height=4.4) as (fig, (a1, a2)):
        for i, k in enumerate(keys):
            xs = [r["step"] for r in loss_rows if k in r]
            ys = [r[k] for r in loss_rows if k in r]
            a1.plot(xs, ys, color=palette[i % len(palette)], ls=styles[i % len(styles)], lw=1.8 if k == "loss" else 1.3,
                    marker="o" if len(xs) < 12 else None, ms=3,
                    label="total (weighted sum)" if k == "loss" else f"{k} loss")
        a1.set_xlabel("distillation step (count)")
        a1.set_ylabel("loss (dimensionless, weighted as in the recipe)")
        a1.set_title("training losses, logged every 10 steps", fontsize=9)
        a1.legend(loc="best")
        steps = [r["step"] for r in eval_rows if f"eval_{metric}" in r]
        vals = [r[f"eval_{metric}"] for r in eval_rows if f"eval_{metric}" in r]
        last_step = max([r["step"] for r in loss_rows] or [0])
        s, t = report.get("student_score"), report.get("teacher_score")
        if s is not None:
            steps, vals = [*steps, last_step], [*vals, s]
        pct = metric == "accuracy"
        scale = 100.0 if pct else 1.0
        if steps:
            a2.plot(steps, np.array(vals) * scale, color=COLORS["blue"], marker="o", lw=1.6, label=f"student {metric}")
        if t is not None:
            a2.axhline(t * scale, color=COLORS["vermillion"], ls="--", lw=1.3, label=f"teacher {metric} ({t * scale:.1f}"
                       + ("%)" if pct else ")"))
        if s is not None:
            a2.annotate(f"{s * scale:.1f}" + ("%" if pct else ""), (last_step, s * scale), textcoords="offset points",
                        xytext=(-8, -14), ha="right", fontsize=8)
        note = "evaluated periodically" if len(eval_rows) else "evaluated after the last step only"
        a2.set_title(f"evaluation {metric} ({note})", fontsize=9)
        a2.set_xlabel("distillation step (count)")
        a2.set_ylabel(f"{metric} (%)" if pct else f"{metric} (correlation, -1..1)")
        a2.set_xlim(0, max(1, last_step) * 1.05)
        from matplotlib.ticker import MaxNLocator

        for ax in (a1, a2):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        shown = [v * scale for v in vals] + ([t * scale] if t is not None else [])
        if shown:  # room around the points, so that neither they nor their labels sit under the legend
            lo, hi = min(shown), max(shown)
            pad = max(2.0 if pct else 0.02, 0.25 * (hi - lo))
            a2.set_ylim(lo - 2 * pad, hi + pad)
        a2.legend(loc="upper left")
        ev = report.get("eval") or {}
        rows = ev.get("rows") or ev.get("n")
        fig.suptitle(f"Distillation of {report.get('arch_key', '?')}" + (f", evaluated on {rows} rows" if rows else ""))
        return finish(fig, path)


def write_distill_plot(folder: str | Path) -> Path:
    """Draw ``folder/training.png`` from ``folder/report.json``."""
    folder = Path(folder)
    try:
        report = json.loads((folder / "report.json").read_text())
    except OSError:
        raise InvalidData(f"{folder} has no report.json (is it a student folder written by `hwnas distill`?)") from None
    except ValueError:
        raise InvalidData(f"{folder}/report.json is not valid JSON") from None
    target = folder / DISTILL_PNG
    distill_figure(report, path=target)
    return target
