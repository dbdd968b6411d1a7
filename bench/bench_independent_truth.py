"""Estimators against a truth none of them saw: the table's own recipe, scored on rows the table never used.

The all-rows `distill-proxy` run (the table's 500-step recipe, per-row records on all of sst2/dev.tsv) gives each
student's accuracy on rows 4000-6734; neither the table (rows 0-1999) nor the 200-of-500 proxy (rows 2000-3999)
saw them. Within-band Kendall tau against that truth, with bootstrap intervals over students, for: the table
itself, the parameter count, the same full runs on rows 2000-3999, and the 200-of-500 proxy's three metrics.

    python bench/bench_independent_truth.py            # the committed caches; no training

``--truth-runs`` takes the truth from *other* runs of the same recipe instead: another seed of the full recipe
(``bench_estimators.py --distill-proxy-seed 1``, per-row records on all rows), averaged over the files given. The
``--full`` runs (seed 0 by default) then become one more score to judge, on the truth's own rows too: how well one
seed of the recipe predicts the others is the ceiling any estimator is held to. Only students present in every file
are used (a partial run of the other seed is fine; the count is printed). Rotating which seed is ``--full`` and
which are the truth gives that ceiling three times over with three seeds.

    python bench/bench_independent_truth.py --truth-runs bench/results/distill-proxy-sst2-500steps-allrows-s1-runs.json \
        --truth-rows 0:6735
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_estimators as be  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default=str(HERE / "ground_truth" / "table.csv"))
    ap.add_argument("--full", default=str(HERE / "results" / "distill-proxy-sst2-500steps-allrows-runs.json"),
                    help="runs of the full recipe with per-row records on all 6,735 rows of sst2/dev.tsv")
    ap.add_argument("--proxy", default=str(HERE / "results" / "distill-proxy-sst2-200of500steps-runs.json"),
                    help="runs of the 200-of-500 proxy scored on rows 2000-3999")
    ap.add_argument("--truth-rows", default="4000:6735", type=be._slices, metavar="START:STOP")
    ap.add_argument("--truth-runs", default=None, metavar="FILE[,FILE...]",
                    help="take the truth from these runs (other seeds of the full recipe, per-row records on all "
                         "6,735 rows), averaged, instead of from --full")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)
    from hwnas.estimators.distill_proxy import unpack_bits
    from hwnas.space import Architecture

    (a, b), *_ = args.truth_rows
    _, truth = be.load_truth(Path(args.table), "sst2", space="small")
    full = json.loads(Path(args.full).read_text())["runs"]
    proxy = json.loads(Path(args.proxy).read_text())["runs"]
    others = [json.loads(Path(f).read_text())["runs"] for f in args.truth_runs.split(",")] if args.truth_runs else []
    idx = [i for i, k in enumerate(truth.keys) if k in full and k in proxy and all(k in o for o in others)]
    keys = [truth.keys[i] for i in idx]
    if len(keys) < 3:
        print(f"error: only {len(keys)} students are in every runs file; at least 3 are needed", file=sys.stderr)
        return 2
    within = be.band_mask(truth.predicted_ms[idx])
    everyone = np.ones_like(within)
    bits = np.array([unpack_bits(full[k]["correct"], 6735) for k in keys], float)
    if others:
        other_bits = np.array([[unpack_bits(o[k]["correct"], 6735) for k in keys] for o in others], float)
        new_truth = other_bits[:, :, a:b].mean(axis=(0, 2))
        source = f"{len(others)} other run(s) of the table's recipe (another seed), averaged,"
    else:
        new_truth = bits[:, a:b].mean(1)
        source = "the table's recipe"
    print(f"{len(keys)} of {len(truth.keys)} students of `small`, {int(np.triu(within, 1).sum())} within-band pairs; "
          f"truth: {source} on sst2/dev.tsv rows {a}-{b - 1}")
    rows = {"table accuracy (rows 0-1999)": truth.accuracy[idx],
            "params": np.array([Architecture.parse(k).num_parameters() for k in keys], float),
            ("the --full runs" if others else "the same full runs") + ", rows 2000-3999": bits[:, 2000:4000].mean(1)}
    if others:
        rows[f"the --full runs, the truth's rows {a}-{b - 1}"] = bits[:, a:b].mean(1)
    for m in ("accuracy", "agreement", "kd"):
        rows[f"200-of-500 proxy {m} (rows 2000-3999)"] = np.array([proxy[k][m] for k in keys])
    bands = [truth.bands[i] for i in idx]
    print(f"{'score':44s} {'tau all':>8s} {'tau band':>9s}  {'95% CI':16s} regret (points; the table's bands)")
    for name, s in rows.items():
        lo, hi = be.tau_ci(s, new_truth, within, args.bootstrap)
        print(f"{name:44s} {be.pair_tau(s, new_truth, everyone):8.3f} {be.pair_tau(s, new_truth, within):9.3f}  "
              f"[{lo:.3f}, {hi:.3f}]  {be.regret(s, new_truth, bands):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
