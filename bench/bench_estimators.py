"""How well does each accuracy estimator rank real students? (issue: the estimator ladder)

Reads the ground-truth table (``bench/ground_truth/table.csv``: students distilled
stand-alone with one recipe, accuracy on held-out rows), scores the same
architectures with every estimator, and prints side by side:

* Kendall tau over all students, with a bootstrap 95% interval (students resampled);
* Kendall tau *within latency bands*: only pairs whose predicted latency differs by
  at most 5%, where choosing is hard and counting parameters cannot decide;
* regret: in each band of the table, ground-truth accuracy of the band's best student
  minus that of the estimator's top pick, in points, averaged over bands;
* cost per architecture (seconds, measured in this run; cached scores excluded);
* the ground truth's own noise: the spread of accuracy across seeds for the students
  the table repeats.

Usage (the figures in docs/estimators.md came from this)::

    python bench/bench_estimators.py --table bench/ground_truth/table.csv --task sst2 \\
        --data /path/to/shared/data --estimators params,flops,wpca,attn-confidence,task-proxy \\
        --results bench/results/estimators-sst2.json

Add ``--supernet DIR`` for the supernet-* estimators. Benchmarks print figures; they
never assert.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

TASK_FILES = {"sst2": "sst2/train.tsv", "agnews": "agnews/train.tsv"}


def load_truth(table: Path, task: str) -> tuple[list[str], np.ndarray, np.ndarray, list[str], dict]:
    """Architectures, mean accuracy over seeds, predicted latency, band, and seed-noise facts."""
    from hwnas.errors import InvalidData

    if not table.is_file():
        raise InvalidData(f"ground-truth table {table} does not exist")
    with table.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("task") == task]
    need = {"arch", "accuracy", "predicted_ms", "band", "seed"}
    if rows and not need <= set(rows[0]):
        raise InvalidData(f"{table} lacks columns {sorted(need - set(rows[0]))}")
    seen = set()
    by_arch: dict[str, list[float]] = defaultdict(list)
    meta: dict[str, tuple[float, str]] = {}
    for r in rows:
        key = (r["arch"], r["seed"])
        if key in seen:
            raise InvalidData(f"{table}: {r['arch']} seed {r['seed']} appears twice for task {task}")
        seen.add(key)
        by_arch[r["arch"]].append(float(r["accuracy"]))
        meta[r["arch"]] = (float(r["predicted_ms"]), r["band"])
    archs = sorted(by_arch)
    acc = np.array([np.mean(by_arch[a]) for a in archs])
    lat = np.array([meta[a][0] for a in archs])
    bands = [meta[a][1] for a in archs]
    repeated = {a: v for a, v in by_arch.items() if len(v) >= 2}
    noise = {
        "students_repeated": len(repeated),
        "mean_seed_std_points": float(np.mean([np.std(v, ddof=1) * 100 for v in repeated.values()])) if repeated else None,
        "max_seed_range_points": float(max((max(v) - min(v)) * 100 for v in repeated.values())) if repeated else None,
    }
    return archs, acc, lat, bands, noise


def pair_tau(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    """Kendall tau-b over the pairs ``(i, j)``, ``i < j``, where ``mask[i, j]``."""
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu(np.ones_like(mask, dtype=bool), 1) & mask
    a, b = dx[iu], dy[iu]
    n0 = a.size
    if n0 == 0:
        return float("nan")
    n1, n2 = np.sum(a == 0), np.sum(b == 0)
    denom = np.sqrt((n0 - n1) * (n0 - n2))
    return float(np.sum(a * b) / denom) if denom > 0 else float("nan")


def tau_ci(scores: np.ndarray, acc: np.ndarray, mask: np.ndarray, reps: int, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% interval of :func:`pair_tau` over students; a resampled student's pair with its own copy is
    not a pair."""
    return bootstrap(lambda i: pair_tau(scores[i], acc[i], mask[np.ix_(i, i)] & (i[:, None] != i[None, :])),
                     len(acc), reps, seed)


def band_mask(lat: np.ndarray, tol: float = 0.05) -> np.ndarray:
    ratio = lat[:, None] / lat[None, :]
    return np.abs(ratio - 1) <= tol


def bootstrap(fn, n: int, reps: int, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(reps):
        idx = rng.integers(0, n, n)
        v = fn(idx)
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def regret(scores: np.ndarray, acc: np.ndarray, bands: list[str]) -> float:
    out = []
    for b in sorted(set(bands)):
        idx = [i for i, x in enumerate(bands) if x == b]
        if len(idx) < 2:
            continue
        pick = idx[int(np.argmax(scores[idx]))]
        out.append((acc[idx].max() - acc[pick]) * 100)
    return float(np.mean(out)) if out else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default="bench/ground_truth/table.csv")
    ap.add_argument("--task", default="sst2", choices=sorted(TASK_FILES))
    ap.add_argument("--data", default=None, help="folder holding sst2/ and agnews/ (for task-proxy)")
    ap.add_argument("--estimators", default="params,flops,wpca,attn-confidence")
    ap.add_argument("--supernet", default=None)
    ap.add_argument("--teacher", default="default")
    ap.add_argument("--task-proxy-steps", type=int, default=60)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from hwnas.errors import HwnasError
    from hwnas.estimators import make_estimator

    try:
        archs, acc, lat, bands, noise = load_truth(Path(args.table), args.task)
    except HwnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = len(archs)
    within = band_mask(lat)
    n_pairs_within = int(np.triu(within, 1).sum())
    print(f"ground truth: {n} students of task {args.task} from {args.table}; {n_pairs_within} pairs within 5% "
          f"predicted latency; {len(set(bands))} bands")
    if noise["students_repeated"]:
        print(f"seed noise: {noise['students_repeated']} students repeated, mean std {noise['mean_seed_std_points']:.2f} "
              f"points, largest range {noise['max_seed_range_points']:.2f} points")
    if n < 4:
        print("fewer than 4 students: nothing to rank yet")
        return 0

    results = {"command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), "task": args.task,
               "students": n, "pairs_within_band": n_pairs_within, "seed_noise": noise, "estimators": {}}
    header = f"{'estimator':18s} {'tau all':>8s} {'95% CI':>15s} {'tau band':>9s} {'95% CI':>15s} {'regret':>7s} {'s/arch':>8s}"
    print(header)
    print("-" * len(header))
    for name in [e.strip() for e in args.estimators.split(",") if e.strip()]:
        ctx = {"supernet": args.supernet, "teacher": args.teacher, "threads": args.threads}
        if name == "task-proxy":
            if not args.data:
                print(f"{name:18s} skipped: needs --data")
                continue
            ctx |= {"task": str(Path(args.data) / TASK_FILES[args.task]), "steps": args.task_proxy_steps}
        try:
            est = make_estimator(name, **ctx)
        except HwnasError as e:
            print(f"{name:18s} skipped: {e}")
            continue
        t0 = time.perf_counter()
        scores = est.score(archs)
        wall = time.perf_counter() - t0
        everyone = np.ones((n, n), dtype=bool)
        tau_all = pair_tau(scores, acc, everyone)
        tau_band = pair_tau(scores, acc, within)
        ci_all = tau_ci(scores, acc, everyone, args.bootstrap)
        ci_band = tau_ci(scores, acc, within, args.bootstrap)
        reg = regret(scores, acc, bands)
        cost = est.cost_per_arch_s if est.cost_per_arch_s is not None else wall / n
        results["estimators"][name] = {"tau_all": tau_all, "tau_all_ci95": ci_all, "tau_within_band": tau_band,
                                       "tau_within_band_ci95": ci_band, "mean_regret_points": reg,
                                       "cost_s_per_arch": cost, "scores": dict(zip(archs, scores.tolist()))}
        print(f"{name:18s} {tau_all:8.3f} [{ci_all[0]:6.3f},{ci_all[1]:6.3f}] {tau_band:9.3f} "
              f"[{ci_band[0]:6.3f},{ci_band[1]:6.3f}] {reg:7.2f} {cost:8.3f}", flush=True)
    if args.results:
        Path(args.results).write_text(json.dumps(results, indent=1) + "\n")
        print(f"written {args.results}")
    print(f"reproduce: {results['command']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
