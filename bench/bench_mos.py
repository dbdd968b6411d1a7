"""Plain weight sharing against Mixture-of-Supernets, trained with the same compute.

Trains one supernet per mixture (``none``, ``layer``, ``neuron``) with identical
settings (steps, batch, data, teacher, seed), one after the other in this process,
then prints side by side:

* cost: CPU seconds per training step (this process's user+system time, robust
  to other work on a shared machine when ``--threads 1``; it includes loading the
  teacher once per supernet), wall seconds per step,
  and the parameter and optimizer memory (weights + gradients + two AdamW moments,
  fp32);
* the held-out distillation loss of the smallest, a middle and the largest student
  before training (the teacher's slices) and after: does the smallest get worse?
* with ``--table``: Kendall tau of each supernet's score (minus the held-out loss)
  against the ground-truth table's accuracies, over all its students of the
  supernet's space and within latency bands (pairs within 5% predicted latency),
  with bootstrap 95% intervals, beside the parameter count's;
* with ``--table`` and ``--curve``: the same taus after every checkpoint (a
  curve against training steps and CPU seconds), appended to
  ``OUT/<mixture>/curve.jsonl`` as training goes, so a killed run keeps the
  points it had and the resumed run adds the rest.

The expert-specialisation options (``--router-init``, ``--router-temperature``,
``--router-lr-mult``, ``--expert-init``, ``--expert-noise``; unset: TrainConfig's
defaults) apply to the mixtures, and the values each supernet used are written to
the results (``supernets.<kind>.options``) and to every curve point, beside the
experts' distance (and, in the curve, the mixing spread over the table's students).

Usage (figures in docs/supernets.md came from this; resumable: finished supernets
are reused, unfinished ones resume)::

    python bench/bench_mos.py --space small --data /path/to/shared/data/sst2/train.tsv \\
        --steps 300 --batch-size 32 --seq-len 64 --experts 2 --out bench/out/mos \\
        --table bench/ground_truth/table.csv --task sst2 --results bench/results/mos.json

The next measurement (same compute for the three supernets, with the defaults that
make the experts specialise; not run yet)::

    python bench/bench_mos.py --space small --data /path/to/shared/data/sst2/train.tsv \\
        --steps 1000 --checkpoints 10 --batch-size 16 --seq-len 64 --max-rows 20000 --experts 2 \\
        --mixtures none,neuron,layer --out bench/out/mos1000 --table bench/ground_truth/table.csv \\
        --task sst2 --curve --results bench/results/mos-steps1000.json

Estimated cost from ``bench/results/mos-steps200-train.log`` (1 thread, loaded
2-core machine): 2.29 (plain), 2.46 (neuron) and 2.30 (layer) CPU seconds per
step, so 7.05 CPU s per step of all three: about 7,050 CPU seconds (2.0 hours)
for 1000 steps, 4,230 s (70 minutes) for 600, plus the tau scoring after each of
the 10 checkpoints (not counted in those figures; it adds to the wall time only).
A second run with ``--router-lr-mult 10`` (``--mixtures neuron,layer`` and another
``--out``) separates the router's learning rate from its start.

Diagnosis (a few dozen steps, prints the experts' distance and the mixing's
dependence on the architecture; see docs/supernets.md)::

    python bench/bench_mos.py --diagnose --space tiny --mixtures neuron --steps 40 --every 10 \\
        --batch-size 8 --seq-len 32 --max-rows 2000 [--router-init 0 for the earlier behaviour]
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def table_truth(table: Path, task: str, space) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The ground truth's students of ``task`` in ``space`` (its rows whose space column names it):
    architecture keys, seed-mean accuracy, predicted latency (:mod:`hwnas.estimators.truth`).

    Raises:
        InvalidData: the table is bad, holds no row of that task and space, or one of them lies outside ``space``.
    """
    from hwnas.errors import InvalidData
    from hwnas.estimators.truth import read_ground_truth

    gt = read_ground_truth(table, task=task, space=space.name)
    outside = [a.key for a in gt.archs if a not in space]
    if outside:
        raise InvalidData(f"{table}: {len(outside)} students of task {task!r} in space {space.name!r} lie outside "
                          f"that space (e.g. {outside[0]}); the table and --space disagree")
    return gt.keys, gt.accuracy, gt.predicted_ms


def mos_options(args) -> dict:
    """The expert-specialisation options given on the command line (the others keep TrainConfig's defaults)."""
    names = ("router_lr_mult", "router_init", "router_temperature", "expert_init", "expert_noise")
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def effective_options(cfg) -> dict:
    """The values a run used, for its results and curve files."""
    return {k: getattr(cfg, k) for k in ("router_lr_mult", "router_init", "router_temperature", "expert_init",
                                         "expert_noise", "experts", "router_hidden")}


def diagnose(args, opts: dict) -> list[dict]:
    """Train one small MoS supernet (``--mixtures`` names one kind) with the real training loop for ``args.steps``
    steps and print, every ``args.every`` steps, :meth:`ElasticBert.expert_distance` and
    :meth:`ElasticBert.mixing_spread` over 16 fixed architectures (the smallest, the largest, 14 drawn)."""
    import tempfile

    from hwnas.space import get_space
    from hwnas.supernet.train import SupernetLoop, TrainConfig

    space = get_space(args.space)
    rng = np.random.default_rng(0)
    valid = space.enumerate()
    archs = [space.smallest, space.largest] + [valid[int(i)] for i in rng.choice(len(valid), 14, replace=False)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(space=space, out=str(Path(tmp) / "sn"), teacher=args.teacher, data=args.data, steps=args.steps,
                          batch_size=args.batch_size, seq_len=args.seq_len, max_rows=args.max_rows, heldout=8,
                          checkpoint_every=10**6, seed=args.seed, threads=args.threads, mixture=args.mixtures,
                          experts=args.experts, router_hidden=args.router_hidden, **opts)
        print("diagnose " + args.mixtures + ": " + json.dumps(effective_options(cfg)), flush=True)
        loop = SupernetLoop(cfg, resume=False, on_progress=None, on_status=None)
        loop.setup(None)
        loop.resume()
        loop.write_start()

        def record(step: int, loss) -> None:
            row = {"step": step, "expert_distance": loop.model.expert_distance(),
                   "mixing_spread": loop.model.mixing_spread(archs), "loss": loss}
            rows.append(row)
            print(f"  step {step:4d}: expert distance {row['expert_distance']:.4e}, mixing spread "
                  f"{row['mixing_spread']:.3e}" + (f", loss {loss:.4f}" if loss is not None else ""), flush=True)

        def on_progress(ev) -> None:
            if ev.stage == "supernet" and (ev.completed % args.every == 0 or ev.completed == ev.total):
                record(ev.completed, ev.metrics.get("loss"))

        record(0, None)
        loop.on_progress = on_progress
        try:
            loop.run()
        finally:
            if loop.log_fh is not None:
                loop.log_fh.close()
    return rows


def _parse_arms(spec: str) -> list[tuple[str, Path]]:
    arms = []
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--rescore takes NAME=CURVE.jsonl items separated by commas, got {item!r}")
        arms.append((name, Path(path)))
    if len(arms) < 1:
        raise ValueError("--rescore names no curve")
    return arms


def rescore(args) -> int:
    """Score every saved curve point against the table as it is now, so arms trained while the table grew
    are compared on one ground truth, over the same students, with a paired bootstrap of their differences."""
    from bench_estimators import band_mask, pair_tau, tau_ci

    from hwnas.errors import HwnasError
    from hwnas.estimators import make_estimator
    from hwnas.space import get_space

    try:
        arms = _parse_arms(args.rescore)
        if not args.table:
            raise ValueError("--rescore needs --table")
        keys, acc, lat = table_truth(Path(args.table), args.task, get_space(args.space))
        curves = {}
        for name, path in arms:
            if not path.is_file():
                raise ValueError(f"--rescore: no curve file {path}")
            points = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if not points or any("scores" not in p or "step" not in p for p in points):
                raise ValueError(f"--rescore: {path} holds no curve points with per-student scores")
            curves[name] = {p["step"]: p for p in points}
    except (ValueError, HwnasError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    common = [k for k in keys if all(k in p["scores"] for c in curves.values() for p in c.values())]
    if len(common) < 4:
        print(f"error: only {len(common)} students of the table are scored in every curve; 4 are needed",
              file=sys.stderr)
        return 2
    idx = [keys.index(k) for k in common]
    acc, lat = acc[idx], lat[idx]
    within = band_mask(lat)
    every = np.ones_like(within)
    params = np.asarray(make_estimator("params").score(common), dtype=float)
    rng = np.random.default_rng(0)
    boots = [rng.integers(0, len(common), len(common)) for _ in range(args.bootstrap)]

    def wtau(scores, i):
        return pair_tau(scores[i], acc[i], within[np.ix_(i, i)] & (i[:, None] != i[None, :]))

    steps = sorted(set.intersection(*(set(c) for c in curves.values())))
    base = arms[0][0]
    out = {"table": str(args.table), "task": args.task, "students": len(common),
           "pairs_within_band": int(np.triu(within, 1).sum()),
           "params": {"tau_all": pair_tau(params, acc, every), "tau_within_band": pair_tau(params, acc, within),
                      "tau_within_band_ci": list(tau_ci(params, acc, within, args.bootstrap))},
           "steps": {}}
    print(f"{len(common)} students, {out['pairs_within_band']} within-band pairs; params: tau all "
          f"{out['params']['tau_all']:.3f}, within bands {out['params']['tau_within_band']:.3f}")
    print(f"{'step':>5s}  " + "  ".join(f"{n:>22s}" for n, _ in arms) + "   (within-band tau [95% CI]; "
          + f"minus {base}: paired bootstrap)")
    for step in steps:
        row = {}
        for name, _ in arms:
            sc = np.array([curves[name][step]["scores"][k] for k in common], dtype=float)
            row[name] = {"tau_all": pair_tau(sc, acc, every), "tau_within_band": pair_tau(sc, acc, within),
                         "tau_within_band_ci": list(tau_ci(sc, acc, within, args.bootstrap)),
                         "train_cpu_s": curves[name][step].get("train_cpu_s")}
            if name != base:
                sb = np.array([curves[base][step]["scores"][k] for k in common], dtype=float)
                diffs = np.array([wtau(sc, i) - wtau(sb, i) for i in boots])
                diffs = diffs[np.isfinite(diffs)]
                row[name]["minus_" + base] = row[name]["tau_within_band"] - row[base]["tau_within_band"]
                row[name]["minus_" + base + "_ci"] = [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]
        out["steps"][step] = row
        cells = []
        for name, _ in arms:
            r = row[name]
            cell = f"{r['tau_within_band']:.3f} [{r['tau_within_band_ci'][0]:.2f},{r['tau_within_band_ci'][1]:.2f}]"
            if name != base:
                cell += f" {r['minus_' + base]:+.3f} [{r['minus_' + base + '_ci'][0]:+.2f},{r['minus_' + base + '_ci'][1]:+.2f}]"
            cells.append(cell)
        print(f"{step:5d}  " + "  ".join(cells), flush=True)
    if args.results:
        out["command"] = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
        Path(args.results).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="small")
    ap.add_argument("--teacher", default="default")
    ap.add_argument("--data", default=None, help="text or labelled table for task-agnostic distillation")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--max-rows", type=int, default=20000)
    ap.add_argument("--experts", type=int, default=2)
    ap.add_argument("--router-hidden", type=int, default=128)
    ap.add_argument("--mixtures", default="none,layer,neuron")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/out/mos")
    ap.add_argument("--table", default=None, help="ground-truth table (bench/ground_truth/table.csv)")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--results", default=None)
    ap.add_argument("--curve", action="store_true", help="tau against the table after every checkpoint")
    ap.add_argument("--checkpoints", type=int, default=10, help="checkpoints per supernet (curve points)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the tau intervals")
    ap.add_argument("--diagnose", action="store_true",
                    help="train one supernet (--mixtures names one kind) for --steps and print the expert distance "
                         "and the router's mixing spread every --every steps; no table, no comparison")
    ap.add_argument("--every", type=int, default=5, help="with --diagnose: steps between printed points")
    ap.add_argument("--router-lr-mult", type=float, default=None, help="router learning rate / --lr (default: TrainConfig's)")
    ap.add_argument("--router-init", type=float, default=None, help="router output-layer spread (0: uniform mixing)")
    ap.add_argument("--router-temperature", type=float, default=None, help="softmax temperature of the mixing")
    ap.add_argument("--expert-init", choices=["noise", "random"], default=None, help="how extra experts start")
    ap.add_argument("--expert-noise", type=float, default=None, help="extra experts' noise scale (x tensor std)")
    ap.add_argument("--rescore", default=None, metavar="NAME=CURVE,...",
                    help="score saved curves (curve.jsonl files, whose points keep every student's score) against "
                         "--table as it is now, side by side, with a paired bootstrap of each arm's within-band tau "
                         "minus the first arm's; trains nothing")
    args = ap.parse_args(argv)
    if args.rescore:
        return rescore(args)

    import torch

    from hwnas.space import get_space
    from hwnas.supernet import load_supernet
    from hwnas.supernet.estimate import SupernetEstimator
    from hwnas.supernet.train import TrainConfig, train_supernet

    torch.set_num_threads(args.threads)
    if args.diagnose:
        rows = diagnose(args, mos_options(args))
        if args.results:
            Path(args.results).write_text(json.dumps({"command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
                                                      "settings": vars(args), "diagnose": rows}, indent=1) + "\n")
        return 0
    space = get_space(args.space)
    probes = {"smallest": space.smallest, "middle": space.enumerate()[len(space) // 2], "largest": space.largest}
    truth = None
    if args.table:
        from bench_estimators import band_mask, pair_tau, tau_ci

        from hwnas.errors import HwnasError

        try:
            truth = table_truth(Path(args.table), args.task, space)
        except HwnasError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"ground truth: {len(truth[0])} students of space {space.name}, task {args.task}"
              + ("" if len(truth[0]) >= 4 else "; at least 4 are needed for tau"))
        truth = truth if len(truth[0]) >= 4 else None
    # Tokenise once before any timing, so the first supernet does not pay for everyone's data.
    from hwnas.supernet.data import build_token_cache
    from hwnas.supernet.teacher import load_teacher

    build_token_cache(args.data, load_teacher(args.teacher).tokenizer, seq_len=args.seq_len,
                      cache_dir=Path(args.out) / ".cache", max_rows=args.max_rows)
    def taus(scores: np.ndarray) -> dict[str, float]:
        """Tau over all students and within bands, each with a bootstrap interval over students."""
        _, acc, lat = truth
        within, every = band_mask(lat), np.ones((len(acc),) * 2, bool)
        out = {}
        for name, mask in (("tau_all", every), ("tau_within_band", within)):
            out[name] = pair_tau(scores, acc, mask)
            out[name + "_ci"] = list(tau_ci(scores, acc, mask, args.bootstrap))
        out["pairs_within_band"] = int(np.triu(within, 1).sum())
        return out

    def curve_callback(kind: str, out: Path, start_cpu: float, prior_cpu: float, options: dict):
        """An ``on_progress`` that scores the truth after every checkpoint and appends one JSON line."""
        path = out / "curve.jsonl"
        seen = {json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()} if path.exists() else set()

        from hwnas.space import Architecture

        def on_progress(ev) -> None:
            if ev.stage != "supernet" or not ev.checkpoint or ev.completed in seen:
                return
            t0 = cpu_s()
            sn = load_supernet(out)
            scores = SupernetEstimator(sn, "loss", cache=False, threads=args.threads).score(truth[0])
            point = {"step": ev.completed, "train_cpu_s": prior_cpu + t0 - start_cpu - on_progress.eval_cpu,
                     "options": options, "expert_distance": sn.model.expert_distance(),
                     "mixing_spread": sn.model.mixing_spread([Architecture.parse(a) for a in truth[0]]),
                     "students": len(truth[0]), "loss": ev.metrics.get("loss"), **taus(np.asarray(scores)),
                     "scores": dict(zip(truth[0], np.asarray(scores).tolist(), strict=True))}
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(point) + "\n")
            seen.add(ev.completed)
            on_progress.eval_cpu += cpu_s() - t0
            print(f"  {kind} step {ev.completed}: tau all {point['tau_all']:.3f}, within bands "
                  f"{point['tau_within_band']:.3f}", flush=True)
        on_progress.eval_cpu = 0.0
        return on_progress

    results = {"command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), "settings": vars(args),
               "supernets": {}}
    for kind in [m.strip() for m in args.mixtures.split(",") if m.strip()]:
        out = Path(args.out) / kind
        cfg = TrainConfig(space=space, out=str(out), teacher=args.teacher, data=args.data, steps=args.steps,
                          batch_size=args.batch_size, seq_len=args.seq_len, max_rows=args.max_rows,
                          checkpoint_every=max(1, args.steps // args.checkpoints), seed=args.seed, threads=args.threads,
                          cache_dir=str(Path(args.out) / ".cache"), mixture=kind, experts=args.experts,
                          router_hidden=args.router_hidden, **(mos_options(args) if kind != "none" else {}))
        done = (out / "supernet.json").is_file() and json.loads((out / "supernet.json").read_text()).get("steps_done") == args.steps
        t_cpu, t_wall = cpu_s(), time.perf_counter()
        if not done:
            callback = None
            if args.curve and truth is not None:
                prior = out / "curve.jsonl"
                points = [json.loads(x) for x in prior.read_text().splitlines() if x.strip()] if prior.exists() else []
                callback = curve_callback(kind, out, cpu_s(), points[-1]["train_cpu_s"] if points else 0.0,
                                          effective_options(cfg) if kind != "none" else {})
            result = train_supernet(cfg, resume=(out / "checkpoints").exists(), on_progress=callback)
            steps_run = result.steps_run
            eval_cpu = callback.eval_cpu if callback is not None else 0.0
        else:
            steps_run, eval_cpu = 0, 0.0
        cpu_per_step = (cpu_s() - t_cpu - eval_cpu) / steps_run if steps_run else None
        wall_per_step = (time.perf_counter() - t_wall) / steps_run if steps_run else None
        sn = load_supernet(out)
        n_params = sum(p.numel() for p in sn.model.parameters())
        est = SupernetEstimator(sn, "loss", cache=False, threads=args.threads)
        after = dict(zip(probes, (-est.score(list(probes.values()))).tolist(), strict=True))
        row = {"steps": sn.steps_done, "cpu_s_per_step": cpu_per_step, "wall_s_per_step": wall_per_step,
               "parameters": n_params, "train_memory_mb": n_params * 4 * 4 / 2**20, "heldout_loss_after": after,
               "first_loss": sn.meta.get("first_loss"), "options": effective_options(cfg) if kind != "none" else {},
               "mixture": sn.meta.get("mixture"), "expert_distance": sn.model.expert_distance()}
        if truth is not None:
            row.update(taus(np.asarray(est.score(truth[0]))))
            row["students"] = len(truth[0])
            curve = out / "curve.jsonl"
            if curve.exists():
                row["curve"] = [json.loads(x) for x in curve.read_text().splitlines() if x.strip()]
        results["supernets"][kind] = row
        print(f"{kind:7s} steps {row['steps']}: cpu {cpu_per_step if cpu_per_step else float('nan'):.2f} s/step, "
              f"params {n_params / 1e6:.1f}M ({row['train_memory_mb']:.0f} MB with AdamW), held-out loss "
              + ", ".join(f"{k} {v:.4f}" for k, v in after.items())
              + (f"; tau all {row['tau_all']:.3f}, within bands {row['tau_within_band']:.3f}" if "tau_all" in row else ""),
              flush=True)
    # the teacher's slices before any training: what "gets worse" is measured against
    from hwnas.supernet.elastic import ElasticBert

    teacher = load_teacher(args.teacher)
    start = ElasticBert(space.largest, teacher.config)
    start.init_from_teacher(teacher.model)
    any_sn = load_supernet(Path(args.out) / next(iter(results["supernets"])))
    any_sn.model = start.eval()
    any_sn.meta = {**any_sn.meta, "weights_sha256": "teacher-slices"}
    before = dict(zip(probes, (-SupernetEstimator(any_sn, "loss", cache=False).score(list(probes.values()))).tolist(), strict=True))
    results["heldout_loss_before"] = before
    if truth is not None:
        results["before_training"] = taus(np.asarray(SupernetEstimator(any_sn, "loss", cache=False).score(truth[0])))
        print(f"before training (teacher slices): tau all {results['before_training']['tau_all']:.3f}, "
              f"within bands {results['before_training']['tau_within_band']:.3f}")
    print("before training (teacher slices): " + ", ".join(f"{k} {v:.4f}" for k, v in before.items()))
    if truth is not None:
        from hwnas.estimators import make_estimator

        p = np.asarray(make_estimator("params").score(truth[0]), dtype=float)
        results.update({"params_" + k: v for k, v in taus(p).items()})
        print(f"params  tau all {results['params_tau_all']:.3f} {results['params_tau_all_ci']}, within bands "
              f"{results['params_tau_within_band']:.3f} {results['params_tau_within_band_ci']} "
              f"({results['params_pairs_within_band']} pairs)")
    if args.results:
        Path(args.results).write_text(json.dumps(results, indent=1) + "\n")
        print(f"written {args.results}")
    print(f"reproduce: {results['command']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
