"""AutoDistiller, leave one task out: its recommended recipe against the default and the best in hindsight.

Every candidate recipe (``--recipes``) is run on every task (``--tasks``: sst2, agnews, news; see
bench_recipe.py for how each task is built) for every seed, with the same student and budget
(typed options override each recipe's steps; a two-stage recipe's task-agnostic steps are scaled
by the same factor, as ``hwnas distill --recipe`` does). Then, for each held-out task, the AutoDistiller (:func:`hwnas.distill.auto.recommend`)
is trained on the experience records of the *other* tasks only and asked for a recipe given the
held-out task's dataset features; the bench prints that recipe's measured accuracy and kept
fraction beside the default recipe's and the best recipe's in hindsight (mean over seeds).

Resumable: finished runs are read back from ``<work>/results.jsonl``; runs append to
``<work>/experience.jsonl``. ``--seed-table PATH`` also writes the experience records (no text,
only features, settings and results) as the package's shipped seed table.

Only the runs of ``--seeds`` teach the recommender: each experience record is matched to its row of
``results.jsonl`` (task, recipe and kept fraction; a record has no seed of its own), and records without
a row (a run whose row was not written yet) are left out and counted. ``--evaluate-only`` starts no run:
it evaluates on the finished runs in ``--work``, which it only reads (``--seed-table`` aside).

    python bench/bench_autodistill.py --data ../shared/data --work bench/out/autodistill \\
        --tasks sst2,agnews,news --steps 200 --lr 3e-4 --limit 2000 --eval-rows 400 --seeds 0

At a budget of 200 steps on 2,000 rows the differences between recipes are mostly seed noise:
figures at that scale test the machinery, not the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recipe import audit_cpu, carry_ledger, common_args, fmt_cpu, read_results, run_distill  # noqa: E402

DEFAULT_RECIPES = "default,logits-only,minilm,two-stage,augmented,annealed,mi-alpha"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap)
    ap.add_argument("--recipes", default=DEFAULT_RECIPES, help="candidate recipes, comma-separated")
    ap.add_argument("--seed-table", default=None, help="also write the experience records here (the shipped seed)")
    ap.add_argument("--margin", default="auto",
                    help="the predicted gain over default a recipe needs to be recommended (kept fraction): 'auto' "
                         "(the training tasks' seed noise, as hwnas distill --recipe auto) or a number (0: the "
                         "highest prediction wins)")
    ap.add_argument("--no-nearest-check", action="store_true",
                    help="let the model's ranking alone decide (hwnas.distill.auto.recommend(nearest_check=False)); "
                         "by default a pick must also have beaten default beyond the margin on the nearest past task")
    ap.add_argument("--evaluate-only", action="store_true",
                    help="train nothing: evaluate on the finished runs already in --work (read only)")
    args = ap.parse_args(argv)
    tasks, recipes = args.tasks.split(","), args.recipes.split(",")
    if args.margin != "auto":
        text = args.margin
        try:
            args.margin = float(text)
        except ValueError:
            args.margin = math.nan
        if not (math.isfinite(args.margin) and args.margin >= 0):
            print(f"--margin must be 'auto' or a kept fraction >= 0; got {text!r}", file=sys.stderr)
            return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    work = Path(args.work)
    if args.evaluate_only:
        for name in ("experience.jsonl", "results.jsonl"):
            if not (work / name).is_file():
                print(f"--evaluate-only needs finished runs: no {work / name}", file=sys.stderr)
                return 2
        if "news" in tasks and not (work / "news-source" / "dev.tsv").is_file():
            print(f"--evaluate-only reads the news-source task from {work / 'news-source'}, which is missing",
                  file=sys.stderr)
            return 2
    else:
        work.mkdir(parents=True, exist_ok=True)
    print("command:", shlex.join([sys.executable, *(sys.argv if argv is None else ["bench_autodistill.py", *argv])]),
          flush=True)
    if not args.evaluate_only:
        carry_ledger(args)
    new = 0
    for task in tasks if not args.evaluate_only else ():
        for recipe in recipes:
            for seed in seeds:
                if args.max_runs is not None and new >= args.max_runs:
                    break
                try:
                    row = run_distill(task, recipe, seed, recipe, [], args)
                except RuntimeError as exc:
                    print(f"FAILED {exc}", flush=True)
                    continue
                new += not row.get("reused")
                print(f"{task} {recipe:12s} seed {seed}: accuracy {row['student']:.4f} (teacher {row['teacher']:.4f}, "
                      f"kept {row['kept']:.3f}), {fmt_cpu(row)}{' (reused)' if row.get('reused') else ''}",
                      flush=True)

    from hwnas.distill.auto import recommend
    from hwnas.distill.experience import read_table
    from hwnas.distill.recipes import get_recipe

    records = read_table(work / "experience.jsonl")
    results = [audit_cpu(r, work / "runs" / r["task"] / f"{r['variant']}-s{r['seed']}")
               for r in read_results(work / "results.jsonl")]
    id_of = {t: task_id_of(t, args) for t in tasks}
    for rec in records:  # name the records' tasks, for readers of the seed table
        rec["task"]["name"] = next((t for t, i in id_of.items() if i == rec["task"]["id"]), rec["task"].get("name"))
    if args.seed_table:
        Path(args.seed_table).parent.mkdir(parents=True, exist_ok=True)
        Path(args.seed_table).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        print(f"wrote {len(records)} records to {args.seed_table}")
    seed_of = record_seeds(records, results)
    unmatched = sum(s is None for s in seed_of)
    records = [r for r, s in zip(records, seed_of, strict=True) if s in seeds]
    print(f"{len(records)} experience records of seeds {args.seeds} teach the recommender"
          + (f"; {unmatched} records without a row in results.jsonl left out" if unmatched else ""))

    def measured(task: str, recipe: str, key: str) -> list[float]:
        return [r[key] for r in results if r["task"] == task and r["variant"] == recipe and r["seed"] in seeds]

    print(f"\nAutoDistiller, leave one task out: student {args.arch}, {args.steps} steps, batch {args.batch_size}, "
          f"{args.limit} training rows, {args.max_len} tokens, seeds {args.seeds}, candidates {', '.join(recipes)}")
    w = max(9, *(len(t) for t in tasks))
    print(f"{'held out':{w}s} {'recommended':13s} {'its accuracy':14s} {'default':9s} {'best (hindsight)':24s} "
          f"{'rec - default':>13s} {'best - rec':>10s}")
    ours = [r for r in results if r["task"] in tasks and r["variant"] in recipes and r["seed"] in seeds]
    cpu = sum(r["cpu_s"] for r in ours if r.get("cpu_s") is not None)
    cpu_unknown = sum(r.get("cpu_s") is None for r in ours)
    predicted = {}
    verdict: list[tuple[float, float]] = []  # per held-out task: (recommended - default, best - recommended)
    for task in tasks:
        own = [r for r in records if r["task"]["id"] == id_of[task]]
        others = [r for r in records if r["task"]["id"] != id_of[task] and r["recipe"]["name"] in recipes]
        if not own:
            print(f"{task:{w}s} no runs yet")
            continue
        arch = own[0]["arch"]
        typed = {"steps": args.steps, "batch_size": args.batch_size, "max_len": args.max_len,
                 **({"lr": args.lr} if args.lr is not None else {})}
        cands = [get_recipe(n) for n in recipes]
        rec = recommend(own[0]["features"], arch, others, overrides=typed, candidates=cands, seed=0,
                        margin=args.margin, nearest_check=not args.no_nearest_check)
        means = {n: statistics.mean(v) for n in recipes if (v := measured(task, n, "student"))}
        if not means:
            continue
        predicted[task] = rec
        best = max(means, key=means.get)
        got, default = means.get(rec.recipe, float("nan")), means.get("default", float("nan"))
        verdict.append((got - default, means[best] - got))
        print(f"{task:{w}s} {rec.recipe + ('*' if rec.fallback else ''):13s} {got:<14.4f} {default:<9.4f} "
              f"{best + f' {means[best]:.4f}':24s} {got - default:>+13.4f} {means[best] - got:>10.4f}")
        if rec.fallback:
            print(f"{'':{w}s}  * {rec.reason}")
    if verdict:
        # the goal: at least as good as the default on every task, within 0.5 points of the best on two
        print(f"goal: at least as good as default on {sum(d >= -1e-9 for d, _ in verdict)} of {len(verdict)} "
              f"held-out tasks (all needed); within 0.5 points of the best on "
              f"{sum(b <= 0.005 + 1e-9 for _, b in verdict)} (two needed)")
    if any(not rec.fallback for rec in predicted.values()):
        print("\npredicted advantage of each candidate (kept fraction over an average recipe on the task) "
              "[its measured runs on the held-out task]:")
        for task, rec in predicted.items():
            print(f"{task:{w}s} " + "  ".join(f"{n} {p:+.3f} [{len(measured(task, n, 'student'))}]"
                                            for n, p in rec.predicted.items())
                  + f"  | margin {rec.margin:.4f}" + (" (default kept: gain within it)" if "keeping default"
                                                        in rec.reason and rec.nearest is None else "")
                  + (f" | nearest past task {rec.nearest['name'] or rec.nearest['task']} (distance "
                     f"{rec.nearest['distance']:.2f}, typical {rec.nearest['typical']:.2f}): measured {rec.nearest['gain']:+.3f}"
                     + (" -> default kept" if rec.recipe == "default" else "") if rec.nearest else ""))
    spread = [statistics.stdev(v) for t in tasks for n in recipes if len(v := measured(t, n, "student")) > 1]
    print(f"\nseed spread (std of accuracy over seeds, mean over task x recipe): "
          f"{statistics.mean(spread):.4f}" if spread else "\nseed spread: one seed per run (unknown; run more --seeds)")
    print(f"CPU time of the runs: {cpu:.0f} s" + (f" ({cpu_unknown} runs' CPU time unknown, not counted)"
                                                   if cpu_unknown else ""))
    return 0


def record_seeds(records: list[dict], results: list[dict]) -> list[int | None]:
    """The seed of each experience record, from the ``results.jsonl`` row of the same task name, recipe and
    kept fraction (each row used once, in order); ``None`` for a record without such a row. Two runs of one
    recipe on one task with the same kept fraction differ in nothing the recommender sees, so which of them
    takes which seed does not matter."""
    free: dict[tuple, list[int]] = {}
    for row in results:
        free.setdefault((row["task"], row["variant"], round(float(row["kept"]), 9)), []).append(row["seed"])
    out = []
    for rec in records:
        kept = rec.get("result", {}).get("kept")
        key = (rec["task"].get("name"), rec["recipe"]["name"], round(float(kept), 9) if kept is not None else None)
        seeds = free.get(key)
        out.append(seeds.pop(0) if seeds else None)
    return out


def task_id_of(task: str, args) -> str:
    """The experience table's id of a task as the runs load it (the training rows after the held-out split)."""
    from bench_recipe import task_files

    from hwnas.distill.api import DistillConfig, load_data
    from hwnas.distill.auto import task_id

    train, evalf, eval_rows = task_files(task, args)
    config = DistillConfig(arch=args.arch, task=train, eval=evalf, eval_limit=eval_rows, limit=args.limit, measure=False)
    return task_id(load_data(config)[0])


if __name__ == "__main__":
    raise SystemExit(main())
