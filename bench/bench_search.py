"""Benchmark the search strategies, then verify their winners on the device.

1. Score every architecture of the space that is feasible under the largest
   budget with the accuracy estimator, once (cached in ``--out``; a killed run
   resumes), to know the true Pareto front under the estimator.
2. For each budget, run every strategy with ``--seeds`` seeds through the
   ask/tell API on those cached scores (identical to calling the estimator,
   which is deterministic and cached per architecture): hypervolume against
   evaluations, and the evaluations needed to reach 99% of the true
   hypervolume (reference point: the lowest feasible score and the budget).
3. ``--verify DEVICE``: measure the winners (the best feasible architecture
   after ``--winner-at`` evaluations, of every strategy and seed) with the
   profiler and the predictor's device settings, and report predicted against
   measured latency and the share within budget.

Real run (what the closing note reports)::

    nice -n 19 python bench/bench_search.py --predictor bench/results/cpu-small.hwnas \\
        --supernet bench/out/supernets/small --budgets 5,10,20 --seeds 5 --verify cpu \\
        --out bench/out/search --results bench/results/search-small.json

Development run on the synthetic problem (no artefacts needed)::

    python bench/bench_search.py --synthetic --space small --budgets 5,10 --seeds 2 --out /tmp/bs
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from hwnas.search import create_strategy
from hwnas.search.pareto import hypervolume_2d, pareto_mask
from hwnas.search.problem import SearchProblem
from hwnas.space import Architecture

# Strategy variants compared: the registry's strategies with their defaults
# (evolution = HAT's settings), plus evolution with a population sized for
# an expensive estimator, labelled as such.
VARIANTS: dict[str, tuple[str, dict]] = {
    "random": ("random", {}),
    "evolution (HAT: pop 125)": ("evolution", {}),
    "evolution (pop 25)": ("evolution", {"population_size": 25, "parents": 5, "mutations": 10, "crossovers": 10}),
    "bo": ("bo", {}),
}
CHECKPOINTS = (8, 16, 32, 64, 128)


class TableEstimator:
    """Scores looked up from the enumerated table; counts evaluations."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls = 0

    def score(self, archs):
        self.calls += len(archs)
        return np.array([self.table[a.key] for a in archs], dtype=np.float64)


def enumerate_scores(estimator, archs: list[Architecture], cache: Path, chunk: int = 8) -> dict[str, float]:
    """Score ``archs`` with ``estimator``, saving to ``cache`` after every chunk (resumable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    table: dict[str, float] = {}
    if cache.is_file():
        table = {k: float(v) for k, v in json.loads(cache.read_text())["scores"].items()}
    todo = [a for a in archs if a.key not in table]
    name = getattr(estimator, "name", type(estimator).__name__)
    start = time.perf_counter()
    with Progress(TextColumn("[bold]enumerating[/] scores"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn()) as progress:
        task = progress.add_task("enum", total=len(archs), completed=len(archs) - len(todo))
        for i in range(0, len(todo), chunk):
            part = todo[i: i + chunk]
            for a, s in zip(part, np.asarray(estimator.score(part), dtype=np.float64).tolist(), strict=True):
                table[a.key] = float(s)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps({"estimator": name, "scores": table}, indent=0))
            tmp.replace(cache)
            progress.update(task, advance=len(part))
    print(f"scored {len(todo)} architecture(s) in {time.perf_counter() - start:.0f} s "
          f"({len(archs) - len(todo)} from the cache {cache})")
    return table


def run_one(problem: SearchProblem, table: dict[str, float], name: str, options: dict, seed: int, *,
            ref_score: float, true_hv: float, max_evals: int, winner_at: int, batch: int = 1) -> dict:
    """One strategy run; stops at ``max_evals``, when the feasible set is used up, or once past both
    99% of the true hypervolume and ``winner_at`` evaluations."""
    strategy = create_strategy(name, seed=seed, **options).setup(problem)
    est = TableEstimator(table)
    idx: list[int] = []
    scores: list[float] = []
    hv: list[float] = []
    reached = None
    winner = None
    start = time.process_time()
    while len(idx) < max_evals:
        archs = strategy.ask(batch)
        if not archs:
            break
        s = est.score(archs)
        strategy.tell(archs, s)
        for a, v in zip(archs, s.tolist(), strict=True):
            idx.append(problem.index(a))
            scores.append(v)
            ii = np.asarray(idx)
            hv.append(hypervolume_2d(np.asarray(scores), problem.latency_ms[ii], ref_score=ref_score,
                                     ref_latency_ms=problem.budget_ms) / true_hv)
            if reached is None and hv[-1] >= 0.99 - 1e-12:
                reached = len(idx)
            if len(idx) == winner_at:
                winner = _best(problem, idx, scores)
        if reached is not None and len(idx) >= winner_at:
            break
    if winner is None:  # stopped before winner_at: the feasible set was used up
        winner = _best(problem, idx, scores)
    return {"hv": hv, "reached_99": reached, "winner": winner, "evaluations": len(idx),
            "cpu_s": time.process_time() - start}


def _best(problem: SearchProblem, idx: list[int], scores: list[float]) -> int:
    ii = np.asarray(idx)
    order = np.lexsort((problem.latency_ms[ii], -np.asarray(scores)))
    return int(ii[order[0]])


def fmt_hv_at(hvs: list[list[float]], n: int) -> str:
    vals = [h[n - 1] if len(h) >= n else h[-1] for h in hvs]
    return f"{np.mean(vals) * 100:.1f}%"


def reverify(args, latency, budgets, problem_for, save, command) -> int:
    """Measure the winners recorded in ``--results`` again (a second, independent measurement)."""
    from hwnas.search.verify import summarise, verify

    results = json.loads(Path(args.results).read_text())
    for budget in budgets:
        entry = results["budgets"][str(budget)]
        listed = entry["verify"]["architectures"]
        archs = [Architecture.from_dict(r["arch"]) for r in listed]
        runs = [int(r.get("runs", 1)) for r in listed]
        records = verify(archs, device=args.verify, predictor=latency, budget_ms=budget, seq_len=args.seq_len,
                         batch_size=args.batch_size)
        print(f"budget {budget:g} ms, repeat measurement of {len(records)} winner(s)")
        print("architecture | predicted ms | upper ms | measured ms (p10-p90) | error | within budget | runs")
        for r, n in zip(records, runs, strict=True):
            print(f"{r.arch} | {r.predicted_ms:.2f} | {r.upper_ms:.2f} | {r.measured_ms:.2f} "
                  f"({r.p10_ms:.2f}-{r.p90_ms:.2f}) | {r.error * 100:+.1f}% | {'yes' if r.within_budget else 'NO'} | {n}")
        share = sum(n for r, n in zip(records, runs, strict=True) if r.within_budget) / sum(runs)
        summary = summarise(records)
        print(f"share of winners within budget: {share * 100:.0f}% of runs, "
              f"{summary['within_budget'] * 100:.0f}% of distinct architectures; mean |error| "
              f"{summary['mean_abs_error'] * 100:.1f}%")
        entry["verify_repeat"] = {"summary": summary, "share_of_runs_within_budget": share, "command": command,
                                  "architectures": [{**r.to_dict(), "runs": n} for r, n in zip(records, runs, strict=True)]}
        save(results)
    print(f"reproduce: {command}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictor", help="predictor bundle (.hwnas)")
    parser.add_argument("--supernet", help="supernet folder")
    parser.add_argument("--metric", default="loss", choices=["loss", "proxy"])
    parser.add_argument("--synthetic", action="store_true", help="synthetic latency and score (development only)")
    parser.add_argument("--space", default="small", help="space for --synthetic")
    parser.add_argument("--budgets", default="5,10,20", help="latency budgets in ms, comma-separated")
    parser.add_argument("--hv-budgets", default=None, help="budgets for the hypervolume study (default: all)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-evals", type=int, default=None,
                        help="cap on evaluations per run (default: none, i.e. up to the whole feasible set)")
    parser.add_argument("--bo-max-evals", type=int, default=150, help="cap on evaluations of a BO run")
    parser.add_argument("--winner-at", type=int, default=64, help="the winner is the best after this many evaluations")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="strategy variants to run")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--verify", default=None, help="measure the winners on this device")
    parser.add_argument("--out", required=True, help="work folder (score cache)")
    parser.add_argument("--results", default=None, help="write the figures to this JSON file")
    parser.add_argument("--reverify", action="store_true",
                        help="measure again the winners already in --results for --budgets (stored as verify_repeat)")
    parser.add_argument("--enumerate-only", action="store_true",
                        help="only fill the score cache (fastest architectures first), then stop")
    args = parser.parse_args(argv)
    command = "python bench/bench_search.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = [float(b) for b in args.budgets.split(",")]
    hv_budgets = [float(b) for b in args.hv_budgets.split(",")] if args.hv_budgets else budgets
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")

    if args.synthetic:
        from hwnas.search.synthetic import SyntheticEstimator, SyntheticLatency

        latency, estimator, space = SyntheticLatency(), SyntheticEstimator(), args.space
        cache = out / f"scores-synthetic-{space}.json"
    else:
        if not (args.predictor and args.supernet):
            parser.error("give --predictor and --supernet, or --synthetic")
        import torch

        from hwnas.predictors import load_predictor
        from hwnas.supernet import load_supernet
        from hwnas.supernet.estimate import SupernetEstimator

        torch.set_num_threads(1)
        latency = load_predictor(args.predictor)
        supernet = load_supernet(args.supernet)
        space = supernet.space
        if latency.space not in (None, space.name):
            parser.error(f"predictor space {latency.space!r} differs from supernet space {space.name!r}")
        estimator = SupernetEstimator(supernet, metric=args.metric, threads=1)
        cache = out / f"scores-{space.name}-{estimator.signature}.json"

    def save(results: dict) -> None:
        """Write the figures so far (after every budget, so a killed run keeps them)."""
        if args.results:
            path = Path(args.results)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1, default=float) + "\n")
            tmp.replace(path)

    def problem_for(budget: float) -> SearchProblem:
        return SearchProblem(space=space, latency=latency, budget_ms=budget, seq_len=args.seq_len,
                             batch_size=args.batch_size)

    if args.reverify:
        return reverify(args, latency, budgets, problem_for, save, command)

    widest = problem_for(max(budgets))
    print(f"space {widest.space.name}: {len(widest)} architectures; predicted latency "
          f"{widest.latency_ms.min():.2f}-{widest.latency_ms.max():.2f} ms (upper bound "
          f"{widest.latency_upper_ms.min():.2f}-{widest.latency_upper_ms.max():.2f} ms)")
    # Fastest first: an interrupted enumeration has then completed the smaller budgets.
    order = widest.feasible_indices[np.argsort(widest.latency_upper_ms[widest.feasible_indices], kind="stable")]
    table = enumerate_scores(estimator, [widest.candidates[i] for i in order], cache)
    if args.enumerate_only:
        return 0

    results: dict = {"command": command, "space": widest.space.name, "budgets": {}, "estimator": getattr(estimator, "name", "")}
    winners_by_budget: dict[float, list[tuple[str, int, int]]] = {}
    for budget in budgets:
        problem = problem_for(budget)
        f = problem.feasible_indices
        all_scores = np.array([table[problem.candidates[i].key] for i in f])
        ref = float(all_scores.min())
        true_hv = hypervolume_2d(all_scores, problem.latency_ms[f], ref_score=ref, ref_latency_ms=budget)
        front = int(pareto_mask(all_scores, problem.latency_ms[f]).sum())
        best_true = int(f[int(np.argmax(all_scores))])
        print(f"\n== budget {budget:g} ms: {len(f)} feasible architectures (upper bound <= budget), true front "
              f"{front} points, true hypervolume {true_hv:.4g} (reference score {ref:.4f}); best "
              f"{problem.candidates[best_true]} score {all_scores.max():.4f}")
        entry: dict = {"feasible": len(f), "front_size": front, "true_hypervolume": true_hv, "variants": {}}
        winners: list[tuple[str, int, int]] = []
        if budget in hv_budgets:
            rows = []
            for label in variants:
                name, options = VARIANTS[label]
                cap = args.max_evals or len(f)
                if name == "bo":
                    cap = min(cap, args.bo_max_evals)
                runs = [run_one(problem, table, name, options, seed, ref_score=ref, true_hv=true_hv,
                                max_evals=cap, winner_at=args.winner_at) for seed in range(args.seeds)]
                reached = [r["reached_99"] for r in runs]
                ok = [r for r in reached if r is not None]
                hvs = [r["hv"] for r in runs]
                found_best = np.mean([r["winner"] == best_true for r in runs])
                cpu = np.mean([r["cpu_s"] for r in runs])
                med = f"{np.median(ok):.0f}" if len(ok) == len(reached) else f">{cap}" if not ok else \
                    f"{np.median(ok):.0f} ({len(ok)}/{len(reached)} seeds)"
                spread = f"[{min(ok)}-{max(ok)}]" if ok else ""
                rows.append((label, med, spread, [fmt_hv_at(hvs, n) for n in CHECKPOINTS],
                             f"{found_best * 100:.0f}%", f"{cpu:.1f}"))
                entry["variants"][label] = {
                    "evals_to_99": reached, "median_evals_to_99": float(np.median(ok)) if ok else None,
                    "hv_at": {n: float(np.mean([h[n - 1] if len(h) >= n else h[-1] for h in hvs])) for n in CHECKPOINTS},
                    "winner_is_true_best": float(found_best), "cpu_s_per_run": float(cpu),
                    "hv_curves": [[round(x, 5) for x in h] for h in hvs],
                }
                winners += [(label, seed, r["winner"]) for seed, r in enumerate(runs)]
            header = ["strategy", "evals to 99% HV (median)", "range", *[f"HV@{n}" for n in CHECKPOINTS],
                      f"best found @{args.winner_at}", "CPU s/run"]
            print("(a run stops once past 99% of the true hypervolume and the winner checkpoint; "
                  "later HV columns repeat its last value)")
            print(" | ".join(header))
            for label, med, spread, at, best, cpu in rows:
                print(" | ".join([label, med, spread, *at, best, cpu]))
            bo = entry["variants"].get("bo", {}).get("median_evals_to_99")
            evo = entry["variants"].get("evolution (HAT: pop 125)", {}).get("median_evals_to_99")
            if bo and evo:
                print(f"BO needs {bo / evo:.2f}x the evaluations of HAT evolution to reach 99% (goal <= 0.25)")
        winners_by_budget[budget] = winners
        results["budgets"][str(budget)] = entry
        save(results)

    if args.verify:
        from hwnas.search.verify import predictor_device_settings, summarise, verify

        if args.synthetic:
            parser.error("--verify needs a real predictor")
        print(f"\n== verification on {args.verify}: settings {predictor_device_settings(latency)}, default timing protocol")
        all_within = []
        for budget, winners in winners_by_budget.items():
            if not winners:
                continue
            problem = problem_for(budget)
            archs = [problem.candidates[i] for _, _, i in winners]
            records = verify(archs, device=args.verify, predictor=latency, budget_ms=budget, seq_len=args.seq_len,
                             batch_size=args.batch_size)
            by_arch = {r.arch: r for r in records}
            per_winner = [by_arch[a].within_budget for a in archs]
            all_within += per_winner
            summary = summarise(records)
            print(f"budget {budget:g} ms: {len(records)} distinct winner(s) of {len(winners)} runs")
            print("architecture | predicted ms | upper ms | measured ms (p10-p90) | error | within budget | runs")
            for r in records:
                n_runs = sum(a == r.arch for a in archs)
                print(f"{r.arch} | {r.predicted_ms:.2f} | {r.upper_ms:.2f} | {r.measured_ms:.2f} "
                      f"({r.p10_ms:.2f}-{r.p90_ms:.2f}) | {r.error * 100:+.1f}% | {'yes' if r.within_budget else 'NO'} | {n_runs}")
            print(f"share of winners within budget: {np.mean(per_winner) * 100:.0f}% of runs, "
                  f"{summary['within_budget'] * 100:.0f}% of distinct architectures; "
                  f"mean |error| {summary['mean_abs_error'] * 100:.1f}%")
            results["budgets"][str(budget)]["verify"] = {
                "summary": summary, "share_of_runs_within_budget": float(np.mean(per_winner)),
                "architectures": [{**r.to_dict(), "runs": sum(a == r.arch for a in archs)} for r in records],
            }
            save(results)
        if all_within:
            print(f"\nall budgets: {np.mean(all_within) * 100:.1f}% of {len(all_within)} winners measured within "
                  f"their budget (goal >= 95%)")
            results["share_within_budget"] = float(np.mean(all_within))

    save(results)
    if args.results:
        print(f"\nfigures written to {args.results}")
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
