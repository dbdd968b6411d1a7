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
  the table repeats, and from it the *noise ceiling*: by simulation, the within-band
  tau two independent replicates of the table would show, and the tau between the
  noise-free truth and one replicate (the best an estimator can expect to show);
* ``learned`` (an XGBoost ranker fitted on the table itself) only ever on rows it was
  not fitted on: leave-one-band-out, cross-space (fit on ``--learned-space``, score the
  table's other spaces) and cross-task (fit on ``--task``, score the other task), each
  beside the parameter count on exactly the same rows, with its fit and score time.

Usage (the figures in docs/estimators.md came from this)::

    python bench/bench_estimators.py --table bench/ground_truth/table.csv --task sst2 \\
        --data /path/to/shared/data --estimators params,flops,wpca,attn-confidence,task-proxy \\
        --results bench/results/estimators-sst2.json

Add ``--supernet DIR`` for the supernet-* estimators, ``learned`` to ``--estimators``
for the learned ranker. Benchmarks print figures; they never assert.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

TASK_FILES = {"sst2": "sst2/train.tsv", "agnews": "agnews/train.tsv"}
#: A separate file the distill proxy can score on (rows the ground truth does not use: see --distill-proxy-eval).
EVAL_FILES = {"sst2": "sst2/dev.tsv"}


def load_truth(table: Path, task: str, recipe: str | None = None, steps: int | None = None, space: str | None = None):
    """The validated table and its students of ``task`` in every space, or in ``space``
    (:mod:`hwnas.estimators.truth`).

    Raises:
        InvalidData: the table breaks a rule of :func:`hwnas.estimators.truth.read_truth_table`, or holds no
            row of ``task`` (or mixes recipes there without ``recipe``/``steps``).
    """
    from hwnas.estimators.truth import ALL_SPACES, read_truth_table

    tt = read_truth_table(table)
    return tt, tt.select(task, space or ALL_SPACES, recipe=recipe, steps=steps)


def seed_noise(truth) -> dict:
    """How much the students the table repeats vary across seeds (points)."""
    repeated = truth.repeated(2)
    return {
        "students_repeated": len(repeated),
        "mean_seed_std_points": float(np.mean([np.std(v, ddof=1) * 100 for v in repeated.values()])) if repeated else None,
        "max_seed_range_points": float(max((max(v) - min(v)) * 100 for v in repeated.values())) if repeated else None,
    }


def _two_counts(text: str) -> tuple[int, int]:
    """``"2000,500"`` -> ``(2000, 500)``; anything else is argparse's one-line error (exit 2)."""
    import argparse

    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected two positive integers TRAIN,EVAL; got {text!r}")
    return int(parts[0]), int(parts[1])


def _offset_rows(text: str) -> tuple[int, int]:
    """``"2000,2000"`` -> ``(2000, 2000)``: a first row >= 0 and a row count >= 1; anything else is argparse's
    one-line error (exit 2)."""
    import argparse

    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[1]) < 1:
        raise argparse.ArgumentTypeError(f"expected OFFSET,ROWS (an integer >= 0 and one >= 1); got {text!r}")
    return int(parts[0]), int(parts[1])


def _slices(text: str) -> list[tuple[int, int]]:
    """``"0:2000,2000:6735"`` -> ``[(0, 2000), (2000, 6735)]``: row ranges START:STOP of the evaluation file,
    START >= 0 and STOP > START; anything else is argparse's one-line error (exit 2)."""
    import argparse

    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        a, _, b = part.partition(":")
        if not (a.strip().isdigit() and b.strip().isdigit()) or int(b) <= int(a):
            raise argparse.ArgumentTypeError(f"expected START:STOP row ranges, comma-separated, with STOP > START; "
                                             f"got {text!r}")
        out.append((int(a), int(b)))
    if not out:
        raise argparse.ArgumentTypeError("expected at least one START:STOP row range")
    return out


def space_masks(spaces: list[str], mask: np.ndarray) -> dict[str, np.ndarray]:
    """``mask`` restricted to pairs of one space, per space that has such a pair (bands lie inside one space, but
    the spaces' seed noise differs a lot, so each gets its own figures)."""
    sp = np.array(spaces)
    out = {}
    for name in sorted(set(spaces)):
        m = mask & (sp[:, None] == name) & (sp[None, :] == name)
        if np.triu(m, 1).any():
            out[name] = m
    return out


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


def same_band_mask(bands: list[str]) -> np.ndarray:
    b = np.array(bands, dtype=object)
    return b[:, None] == b[None, :]


def _rank_row(scores: np.ndarray, acc: np.ndarray, mask: np.ndarray, bands: list[str], reps: int,
              with_all: bool) -> dict:
    """Figures of one estimator on one set of rows: tau over all pairs (when one model scored them all),
    tau within bands, their bootstrap CIs, mean regret."""
    n = len(acc)
    everyone = np.ones((n, n), dtype=bool)
    out = {"students": n, "pairs_within_band": int(np.triu(mask, 1).sum()),
           "tau_all": pair_tau(scores, acc, everyone) if with_all else None,
           "tau_all_ci95": tau_ci(scores, acc, everyone, reps) if with_all else None,
           "tau_within_band": pair_tau(scores, acc, mask), "tau_within_band_ci95": tau_ci(scores, acc, mask, reps),
           "mean_regret_points": regret(scores, acc, bands)}
    return out


def _print_row(label: str, r: dict, cost: float | None, fit_s: float | None = None) -> None:
    def ci(v):
        return f"[{v[0]:6.3f},{v[1]:6.3f}]" if v is not None else f"{'':15s}"

    tau_all = f"{r['tau_all']:8.3f}" if r["tau_all"] is not None else f"{'n/a':>8s}"
    cost_s = f"{cost:8.2g}" if cost is not None else f"{'':8s}"
    fit = f"{fit_s:8.2f}" if fit_s is not None else ""
    print(f"{label:34s} {tau_all} {ci(r['tau_all_ci95'])} {r['tau_within_band']:9.3f} {ci(r['tau_within_band_ci95'])} "
          f"{r['mean_regret_points']:7.2f} {cost_s} {fit}", flush=True)


def _learned_on(model, truth, lat_of: dict, reps: int) -> tuple[dict, dict, float]:
    """Score ``truth``'s students with a fitted ranker, beside the parameter count on the same rows."""
    archs = truth.archs
    lat = np.array([lat_of[a.key] for a in archs])
    mask = band_mask(lat) & same_band_mask(truth.bands)
    t0 = time.perf_counter()
    scores = model.predict(archs)
    score_s = (time.perf_counter() - t0) / len(archs)
    params = np.array([a.num_parameters() for a in archs], dtype=np.float64)
    return (_rank_row(scores, truth.accuracy, mask, truth.bands, reps, True),
            _rank_row(params, truth.accuracy, mask, truth.bands, reps, True), score_s)


def learned_report(table, task: str, space: str, lat_of: dict, reps: int, recipe: str | None = None,
                   steps: int | None = None) -> dict:
    """The learned ranker, never scored on a row it was fitted on: leave-one-band-out on ``task``/``space``,
    then fitted on all of them and scored on the table's other spaces (same task) and other tasks (same space).

    ``table``: a :class:`hwnas.estimators.truth.TruthTable` (or a path to read one from); ``recipe``/``steps``
    select the rows of every task (None: the only ones present)."""
    import xgboost  # noqa: F401  (imported before the clock starts: its import is not a fit's cost)

    from hwnas.errors import InvalidData
    from hwnas.estimators.learned import LearnedRanker
    from hwnas.estimators.truth import TruthTable, read_truth_table

    out: dict = {"space": space, "task": task}
    try:
        if not isinstance(table, TruthTable):
            table = read_truth_table(table)
        truth = table.select(task, space, recipe=recipe, steps=steps)
    except InvalidData as e:
        out["error"] = str(e)
        print(f"{'learned':34s} skipped: {e}")
        return out
    # (a) leave one band out: each band scored by a ranker fitted on the other bands only
    bands = sorted(b for b, k in truth.band_sizes().items() if k >= 2)
    held_idx, held_scores, fit_times, score_times, per_band, skipped = [], [], [], [], {}, {}
    for b in bands:
        held = [i for i, x in enumerate(truth.bands) if x == b]
        rest = [i for i, x in enumerate(truth.bands) if x != b]
        t0 = time.perf_counter()
        try:
            model = LearnedRanker().fit(truth.subset(rest))
        except InvalidData as e:
            skipped[b] = str(e)
            continue
        fit_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s = model.predict([truth.archs[i] for i in held])
        score_times.append((time.perf_counter() - t0) / len(held))
        held_idx += held
        held_scores.append(s)
        per_band[b] = pair_tau(s, truth.accuracy[held], np.ones((len(held), len(held)), dtype=bool))
    if held_idx:
        sub = truth.subset(held_idx)
        scores = np.concatenate(held_scores)
        lat = np.array([lat_of[a.key] for a in sub.archs])
        mask = band_mask(lat) & same_band_mask(sub.bands)  # pairs of one held-out band: one model scored both
        params = np.array([a.num_parameters() for a in sub.archs], dtype=np.float64)
        lobo = _rank_row(scores, sub.accuracy, mask, sub.bands, reps, False)
        base = _rank_row(params, sub.accuracy, mask, sub.bands, reps, False)
        out["leave_one_band_out"] = {**lobo, "per_band_tau": per_band, "fit_s_mean": float(np.mean(fit_times)),
                                     "score_s_per_arch": float(np.mean(score_times)),
                                     "params_same_rows": base, "skipped_bands": skipped}
        _print_row(f"learned LOBO ({space}, {len(held_scores)} folds)", lobo, float(np.mean(score_times)),
                   float(np.mean(fit_times)))
        _print_row("  params, same rows and pairs", base, None)
        print(f"  on {lobo['students']} students, {lobo['pairs_within_band']} within-band pairs; held-out band taus: "
              + ", ".join(f"{b} {t:.3f}" for b, t in per_band.items()))
    else:
        out["leave_one_band_out"] = {"error": f"no band could be held out: {skipped}"}
        print(f"{'learned LOBO':34s} not available: {skipped}")
    # (b), (c): one ranker on every band of task/space, scored elsewhere
    try:
        t0 = time.perf_counter()
        full = LearnedRanker().fit(truth)
        full_fit_s = time.perf_counter() - t0
    except InvalidData as e:
        print(f"{'learned cross-space/task':34s} not available: {e}")
        return out
    present = table.pairs()
    for kind, pairs in (("cross_space", sorted((task, sp) for t, sp in present if t == task and sp != space)),
                        ("cross_task", sorted((t, space) for t, sp in present if t != task and sp == space))):
        out[kind] = {}
        if not pairs:
            what = "no other space of this task" if kind == "cross_space" else "no other task in this space"
            print(f"{'learned ' + kind.replace('_', '-'):34s} not available: the table holds {what} yet")
        for t, sp in pairs:
            try:
                other = table.select(t, sp, recipe=recipe, steps=steps)
                pairs_in = {b: k for b, k in other.band_sizes().items() if k >= 2}
                if not pairs_in:
                    print(f"{'learned ' + kind.replace('_', '-'):34s} {t}/{sp} not available yet: {len(other.archs)} "
                          f"students in {len(other.band_sizes())} bands, no band holds two")
                    out[kind][f"{t}/{sp}"] = {"available": False, "students": len(other.archs)}
                    continue
                other_lat = dict(lat_of) if t == task else other.latency_of()
                r, base, score_s = _learned_on(full, other, other_lat, reps)
            except (InvalidData, KeyError) as e:
                print(f"{'learned ' + kind.replace('_', '-'):34s} {t}/{sp} not available: {e}")
                continue
            out[kind][f"{t}/{sp}"] = {**r, "fit_s": full_fit_s, "score_s_per_arch": score_s, "params_same_rows": base}
            _print_row(f"learned {task}/{space} -> {t}/{sp}", r, score_s, full_fit_s)
            _print_row("  params, same rows and pairs", base, None)
            print(f"  on {r['students']} students, {r['pairs_within_band']} within-band pairs")
    return out


def noise_ceiling(truth, archs: list[str], acc: np.ndarray, mask: np.ndarray, reps: int, seed: int = 0) -> dict:
    """What the table's own seed noise allows: the within-band tau of two independent replicates, and of the
    truth against one replicate, by Monte Carlo.

    The noise is not one Gaussian: most students vary by a few tenths of a point across seeds, while some
    small ``tiny`` students either leave the majority-class plateau within the recipe's steps or do not
    (a spread of 20+ points). So each simulated student draws its noise from the observed seed deviations
    of its own space (each repeated student's deviations from its mean, scaled by sqrt(n/(n-1)):
    :meth:`GroundTruth.seed_deviations`); a space without repeats draws from all spaces' deviations.
    Bands lie inside one space.

    "Truth" is the table's seed-mean accuracy (one seed for most students), which already holds one draw of
    the noise, so its spread is slightly wider than the noise-free truth's and the ceiling slightly optimistic.
    ``truth``: the :class:`hwnas.estimators.truth.GroundTruth` of the task, every space.
    """
    order = truth.in_table_order()
    full = {(truth.spaces[i], truth.archs[i].key): list(truth.per_seed[truth.archs[i].key].values())
            for i in order if truth.seeds[i] >= 3}
    if not full:
        two = sum(n == 2 for n in truth.seeds)
        return {"available": False,
                "reason": f"no student of task {truth.task} has 3 seeds yet ({two} with 2, {len(truth.archs)} "
                          "students with 1 or more); the seed repeats are still running or not planned for this task"}
    space_of = dict(zip(truth.keys, truth.spaces, strict=True))
    by_space = space_masks([space_of.get(a, "") for a in archs], mask)
    sd = {f"{sp}:{a}": float(np.std(v, ddof=1)) for (sp, a), v in full.items()}
    dof = sum(len(v) - 1 for v in full.values())
    pooled = float(np.sqrt(sum((len(v) - 1) * np.var(v, ddof=1) for v in full.values()) / dof))
    deviations = truth.seed_deviations(3)
    everything = np.array([d for ds in deviations.values() for d in ds])
    pools = [np.array(deviations.get(space_of.get(a, ""), everything)) for a in archs]
    pooled_by_space = {sp: float(np.sqrt(np.mean(np.square(ds)))) * 100 for sp, ds in deviations.items()}
    rng = np.random.default_rng(seed)

    def draw():
        return np.array([pool[rng.integers(len(pool))] for pool in pools])

    between, truth_vs = [], []
    truth_vs_space: dict[str, list[float]] = {name: [] for name in by_space}
    for _ in range(reps):
        a, b = acc + draw(), acc + draw()
        between.append(pair_tau(a, b, mask))
        truth_vs.append(pair_tau(acc, a, mask))
        for name, m in by_space.items():
            truth_vs_space[name].append(pair_tau(acc, a, m))

    def summary(v):
        v = np.array([x for x in v if np.isfinite(x)])
        return {"mean": float(v.mean()), "p2.5": float(np.percentile(v, 2.5)), "p97.5": float(np.percentile(v, 97.5))}

    return {"available": True, "students_with_3_seeds": len(full), "degrees_of_freedom": dof,
            "per_student_sd_points": {k: v * 100 for k, v in sd.items()}, "pooled_sd_points": pooled * 100,
            "rms_deviation_points_by_space": pooled_by_space, "noise_model": "observed seed deviations per space",
            "simulations": reps,
            "tau_within_band_replicate_vs_replicate": summary(between),
            "tau_within_band_truth_vs_replicate": summary(truth_vs),
            "tau_within_band_truth_vs_replicate_by_space": {
                name: {**summary(v), "pairs": int(np.triu(by_space[name], 1).sum())}
                for name, v in truth_vs_space.items()}}


def row_resolution(bits: np.ndarray, mask: np.ndarray) -> dict:
    """Whether the evaluation rows can tell the within-band students apart, from per-row records.

    ``bits``: ``students x rows`` (right or wrong on each row) of one run per student that replicates the
    table's recipe on the table's own rows. For every within-band pair: the accuracy gap and the standard
    error of the paired difference on these rows (the training runs held fixed: seed noise comes on top).
    Where few pairs differ by more than two standard errors, the table's within-band order is mostly the
    draw of its evaluation rows, and no estimator can be expected to reproduce it. (Split halves and
    bootstrap redraws of the same rows give biased taus here: halves of a fixed total anti-correlate, and
    redraws share most of their rows. Rows the table never used measure it directly: ``--distill-proxy-slices``.)
    """
    n = bits.shape[1]
    gaps, resolved = [], 0
    for i, j in zip(*np.nonzero(np.triu(mask, 1)), strict=True):
        d = bits[i].astype(float) - bits[j].astype(float)
        se = d.std(ddof=1) / np.sqrt(n)
        gaps.append((abs(d.mean()), se))
        resolved += bool(abs(d.mean()) > 2 * se)
    g = np.array(gaps) if gaps else np.zeros((0, 2))
    return {"rows": int(n), "pairs": len(gaps),
            "median_gap_points": float(np.median(g[:, 0]) * 100) if len(g) else None,
            "median_paired_se_points": float(np.median(g[:, 1]) * 100) if len(g) else None,
            "pairs_beyond_2se": int(resolved)}


def report_estimator(name: str, scores: np.ndarray, acc: np.ndarray, within: np.ndarray, bands, spaces, cost: float,
                     bootstrap: int, archs) -> dict:
    """One estimator's figures (and its printed line): tau over all students and within bands, with bootstrap
    intervals, tau within bands per space, the mean regret per band and the cost per architecture."""
    n = len(scores)
    everyone = np.ones((n, n), dtype=bool)
    tau_all, tau_band = pair_tau(scores, acc, everyone), pair_tau(scores, acc, within)
    ci_all, ci_band = tau_ci(scores, acc, everyone, bootstrap), tau_ci(scores, acc, within, bootstrap)
    reg = regret(scores, acc, bands)
    per_space = {k: pair_tau(scores, acc, m) for k, m in space_masks(spaces, within).items()}
    print(f"{name:34s} {tau_all:8.3f} [{ci_all[0]:6.3f},{ci_all[1]:6.3f}] {tau_band:9.3f} "
          f"[{ci_band[0]:6.3f},{ci_band[1]:6.3f}] {reg:7.2f} {cost:8.2g}", flush=True)
    if len(per_space) > 1:
        print("  within bands by space: " + ", ".join(f"{k} {v:.3f}" for k, v in per_space.items()))
    return {"tau_all": tau_all, "tau_all_ci95": ci_all, "tau_within_band": tau_band, "tau_within_band_ci95": ci_band,
            "tau_within_band_by_space": per_space, "mean_regret_points": reg, "cost_s_per_arch": cost,
            "scores": dict(zip(archs, np.asarray(scores).tolist(), strict=True))}


def recipe_losses(recipe_id: str) -> str | None:
    """The losses file of the ground truth's recipe (``bench/ground_truth/losses-<recipe>.json``, as the runner's
    ``RECIPE`` names it), or ``None`` (hwnas distill's default losses) when there is none."""
    path = Path(__file__).with_name("ground_truth") / f"losses-{recipe_id}.json"
    return str(path) if path.is_file() else None


def _finite(obj):
    """``obj`` with NaN (an undefined tau: no pair to compare) written as JSON null."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default="bench/ground_truth/table.csv")
    ap.add_argument("--task", default="sst2", choices=sorted(TASK_FILES))
    ap.add_argument("--data", default=None, help="folder holding sst2/ and agnews/ (for task-proxy)")
    ap.add_argument("--estimators", default="params,flops,wpca,attn-confidence")
    ap.add_argument("--supernet", default=None)
    ap.add_argument("--teacher", default="default")
    ap.add_argument("--task-proxy-steps", type=int, default=60)
    ap.add_argument("--task-proxy-batch-size", type=int, default=16)
    ap.add_argument("--task-proxy-rows", default=(2000, 500), type=_two_counts, metavar="TRAIN,EVAL",
                    help="task-proxy's training rows and held-out rows (the first TRAIN rows of the task file train, "
                         "the next EVAL score)")
    ap.add_argument("--distill-proxy-steps", type=int, default=100)
    ap.add_argument("--distill-proxy-seed", type=int, default=0,
                    help="the proxy's seed (its students' initial heads and batch order; another seed is another "
                         "cache entry): repeat the decisive runs with seeds 1, 2 to average the truth's seed noise away")
    ap.add_argument("--distill-proxy-schedule-steps", type=int, default=None,
                    help="stop after --distill-proxy-steps of a distillation this long (default: a whole schedule of "
                         "--distill-proxy-steps); the ground truth's step count makes the proxy its first steps")
    ap.add_argument("--distill-proxy-losses", default=None,
                    help="the proxy's losses (default: the table's recipe file when it names one, else hwnas distill's)")
    ap.add_argument("--distill-proxy-eval", default=(2000, 2000), type=_offset_rows, metavar="OFFSET,ROWS",
                    help="with a separate evaluation file for the task (sst2/dev.tsv), score on its rows "
                         "OFFSET..OFFSET+ROWS (the ground truth scores SST-2 on the first 2,000); without one, the "
                         "last ROWS rows of the task file are held out")
    ap.add_argument("--distill-proxy-cache", default=None, help="JSON file for the proxy's runs (default: ~/.cache)")
    ap.add_argument("--distill-proxy-record-at", default=None, metavar="STEP,...",
                    help="also score each run at these earlier steps (record_at): one run per student gives the "
                         "figures of stopping at each of them (rows distill-proxy@STEP:METRIC)")
    ap.add_argument("--distill-proxy-slices", default=None, type=_slices, metavar="START:STOP,...",
                    help="also judge the proxy's accuracy and agreement on these rows of the evaluation file (inside "
                         "--distill-proxy-eval), read from each run's per-row records: e.g. the ground truth's own rows "
                         "and rows it never used, from one run per student")
    ap.add_argument("--row-resolution", default=None, type=_slices, metavar="START:STOP",
                    help="the table's own rows inside --distill-proxy-eval, when the proxy runs the table's whole "
                         "recipe: from each run's per-row records on those rows, how many within-band pairs differ by "
                         "more than 2 standard errors of their paired difference (NOISE FLOOR (evaluation rows))")
    ap.add_argument("--only-cached", action="store_true",
                    help="judge only the students whose distill-proxy run is already cached (the figures of a partial "
                         "run, without training)")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--learned-space", default="small", help="space the learned ranker is fitted on (its LOBO rows)")
    ap.add_argument("--noise-sims", type=int, default=2000, help="Monte Carlo replicates of the noise ceiling")
    ap.add_argument("--space", default=None, help="only the students of this space (default: every space)")
    ap.add_argument("--recipe", default=None, help="the table's rows of this recipe (default: its only recipe)")
    ap.add_argument("--steps", type=int, default=None, help="the table's rows of this step count (default: its only one)")
    ap.add_argument("--results", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from hwnas.errors import HwnasError
    from hwnas.estimators import make_estimator
    from hwnas.estimators.distill_proxy import METRICS

    try:
        table, truth = load_truth(Path(args.table), args.task, args.recipe, args.steps, args.space)
    except HwnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.only_cached:
        cache = Path(args.distill_proxy_cache or "")
        if not args.distill_proxy_cache or not cache.is_file():
            print("error: --only-cached needs --distill-proxy-cache FILE, an existing results file", file=sys.stderr)
            return 2
        done = set(json.loads(cache.read_text(encoding="utf-8")).get("runs", {}))
        keep = [i for i, k in enumerate(truth.keys) if k in done]
        print(f"--only-cached: {len(keep)} of {len(truth.keys)} students have a run in {cache}")
        truth = truth.subset(keep)
    archs, acc, lat, bands, noise = truth.keys, truth.accuracy, truth.predicted_ms, truth.bands, seed_noise(truth)
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
               "table_sha256": table.sha256, "table_rows": len(table.rows), "recipe": truth.recipe, "steps": truth.steps,
               "students": n, "pairs_within_band": n_pairs_within, "seed_noise": noise, "estimators": {}}
    header = (f"{'estimator':34s} {'tau all':>8s} {'95% CI':>15s} {'tau band':>9s} {'95% CI':>15s} {'regret':>7s} "
              f"{'s/arch':>8s} {'fit s':>8s}")
    print(header)
    print("-" * len(header))
    for name in [e.strip() for e in args.estimators.split(",") if e.strip()]:
        if name == "learned":  # fitted on the table itself: scored only on rows it was not fitted on
            results["learned"] = learned_report(table, args.task, args.learned_space, dict(zip(archs, lat, strict=True)),
                                                args.bootstrap, args.recipe, args.steps)
            continue
        ctx = {"supernet": args.supernet, "teacher": args.teacher, "threads": args.threads}
        if name in ("task-proxy", "distill-proxy") and not args.data:
            print(f"{name:34s} skipped: needs --data")
            continue
        if name == "task-proxy":
            train_rows, eval_rows = args.task_proxy_rows
            ctx |= {"task": str(Path(args.data) / TASK_FILES[args.task]), "steps": args.task_proxy_steps,
                    "batch_size": args.task_proxy_batch_size, "train_rows": train_rows, "eval_rows": eval_rows}
        if name == "distill-proxy":
            offset, rows = args.distill_proxy_eval
            ctx |= {"task": str(Path(args.data) / TASK_FILES[args.task]), "steps": args.distill_proxy_steps,
                    "schedule_steps": args.distill_proxy_schedule_steps,
                    "losses": args.distill_proxy_losses or recipe_losses(truth.recipe), "eval_rows": rows,
                    "cache": args.distill_proxy_cache, "record_at": args.distill_proxy_record_at or (),
                    "seed": args.distill_proxy_seed}
            if args.task in EVAL_FILES:
                ctx |= {"eval_task": str(Path(args.data) / EVAL_FILES[args.task]), "eval_offset": offset}
        try:
            est = make_estimator(name, **ctx)
        except HwnasError as e:
            print(f"{name:34s} skipped: {e}")
            continue
        if name == "distill-proxy" and args.only_cached and not set(archs) <= est.cached:
            print(f"error: --only-cached: {cache} holds runs of other settings than these", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        if name == "distill-proxy":  # minutes per student: one line each, `small` first (where the goal is measured)
            for i in sorted(range(n), key=lambda i: (truth.spaces[i] != "small", i)):
                est.score([archs[i]])
                rec = est.metrics([archs[i]])[0]
                print(f"  {name} {i + 1}/{n} {archs[i]}: " + ", ".join(f"{m} {rec[m]:.4f}" for m in METRICS)
                      + "".join(f", accuracy@{s} {rec[f'accuracy@{s}']:.4f}" for s in est.record_at)
                      + f" ({rec['cpu_s']:.0f} CPU s; truth {acc[i]:.4f})", flush=True)
        scores = est.score(archs)
        wall = time.perf_counter() - t0
        cost = est.cost_per_arch_s if est.cost_per_arch_s is not None else wall / n
        variants = {name: (scores, None)}  # label -> (scores, the step they were read at; None: the end)
        if name == "distill-proxy":  # one run records every metric: each is reported, at the same cost
            recs = est.metrics(archs)
            variants = {}
            for step in (*est.record_at, None):
                at = "" if step is None else f"@{step}"
                variants |= {f"{name}{at}:{m}": (np.array([r[m + at] for r in recs]), step) for m in METRICS}
            cost = float(np.mean([r["cpu_s"] for r in recs]))  # CPU seconds of the runs, cached ones too
        if name == "distill-proxy" and args.distill_proxy_slices:
            offset = ctx.get("eval_offset") or 0
            for a, b in args.distill_proxy_slices:
                if not offset <= a < b <= offset + ctx["eval_rows"]:
                    print(f"error: --distill-proxy-slices {a}:{b} is not inside the proxy's evaluation rows "
                          f"{offset}:{offset + ctx['eval_rows']}", file=sys.stderr)
                    return 2
                for step in (*est.record_at, None):
                    try:
                        recs = est.slice_metrics(archs, a - offset, b - offset, step=step)
                    except HwnasError as e:
                        print(f"error: {e}", file=sys.stderr)
                        return 2
                    at = "" if step is None else f"@{step}"
                    for m in ("accuracy", "agreement"):
                        variants[f"{name}{at}:{m}@{a}:{b}"] = (np.array([r[m] for r in recs]), step)
        if name == "distill-proxy" and args.row_resolution:
            offset = ctx.get("eval_offset") or 0
            (a, b), *rest = args.row_resolution
            if rest or not offset <= a < b <= offset + ctx["eval_rows"]:
                print(f"error: --row-resolution takes one slice inside the proxy's evaluation rows "
                      f"{offset}:{offset + ctx['eval_rows']}", file=sys.stderr)
                return 2
            bits = est.row_records(archs, a - offset, b - offset)
            results["row_resolution"] = row_resolution(bits, within) | {"slice": f"{a}:{b}"}
        for label, (sc, step) in variants.items():
            # a figure read at an earlier step of the run costs that share of its steps (training dominates)
            share = step / args.distill_proxy_steps if step else 1.0
            results["estimators"][label] = report_estimator(label, sc, acc, within, bands, truth.spaces, cost * share,
                                                            args.bootstrap, archs)
            if name == "distill-proxy":
                results["estimators"][label] |= {"steps": step or args.distill_proxy_steps,
                                                 "run_steps": args.distill_proxy_steps,
                                                 "schedule_steps": args.distill_proxy_schedule_steps,
                                                 "losses": ctx["losses"],
                                                 "eval": ctx.get("eval_task", "last rows of the task file"),
                                                 "eval_offset": ctx.get("eval_offset"), "eval_rows": ctx["eval_rows"],
                                                 "teacher": args.teacher}
    ceiling = noise_ceiling(truth, archs, acc, within, args.noise_sims)
    results["noise_ceiling"] = ceiling
    if ceiling["available"]:
        rr, tr = ceiling["tau_within_band_replicate_vs_replicate"], ceiling["tau_within_band_truth_vs_replicate"]
        print(f"{'NOISE CEILING (seed noise, simulated)':34s} pooled seed sd {ceiling['pooled_sd_points']:.2f} points over "
              f"{ceiling['students_with_3_seeds']} students with 3+ seeds ({ceiling['degrees_of_freedom']} degrees of "
              f"freedom); {ceiling['simulations']} simulations, noise drawn from the observed seed deviations of "
              "each space (rms " + ", ".join(f"{k} {v:.2f}" for k, v in ceiling["rms_deviation_points_by_space"].items())
              + " points)")
        print(f"{'  replicate vs replicate':34s} {'':8s} {'':15s} {rr['mean']:9.3f} [{rr['p2.5']:6.3f},{rr['p97.5']:6.3f}]")
        print(f"{'  noise-free truth vs replicate':34s} {'':8s} {'':15s} {tr['mean']:9.3f} [{tr['p2.5']:6.3f},{tr['p97.5']:6.3f}]"
              "  <- the best within-band tau an estimator can expect to show")
        for name, v in ceiling["tau_within_band_truth_vs_replicate_by_space"].items():
            print(f"{'  ' + name + ' bands only':34s} {'':8s} {'':15s} {v['mean']:9.3f} [{v['p2.5']:6.3f},"
                  f"{v['p97.5']:6.3f}]  ({v['pairs']} pairs)")
        print("  per-student seed sd (points): " + ", ".join(f"{k} {v:.2f}" for k, v in ceiling["per_student_sd_points"].items()))
    else:
        print(f"{'NOISE CEILING':34s} not available: {ceiling['reason']}")
    rc = results.get("row_resolution")
    if rc and rc["pairs"]:
        print(f"{'NOISE FLOOR (evaluation rows)':34s} rows {rc['slice']}, one run per student: within-band pairs differ by "
              f"a median {rc['median_gap_points']:.2f} points, with a median paired standard error of "
              f"{rc['median_paired_se_points']:.2f} points; {rc['pairs_beyond_2se']} of {rc['pairs']} pairs differ by "
              "more than 2 standard errors")
    if args.results:
        Path(args.results).write_text(json.dumps(_finite(results), indent=1, allow_nan=False) + "\n")
        print(f"written {args.results}")
    print(f"reproduce: {results['command']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
