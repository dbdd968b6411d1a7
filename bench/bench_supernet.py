"""Benchmark: supernet training cost, and how well supernet estimates rank real students.

1. Train the ``tiny`` and ``small`` supernets from the default teacher on real
   text (steps, wall time, samples per second).
2. Take ``--archs`` architectures spread over ``small`` (a Latin hypercube
   without the corners), distill each one stand-alone from the teacher with the
   same objective, data, schedule and number of steps (a stand-alone student is
   a supernet whose space holds that one architecture, so the code path is the
   same), and measure its held-out distillation loss and proxy-task score.
3. Kendall tau between the supernet's estimates and the stand-alone students'
   figures; the estimators' throughput (architectures scored per second).

Every phase is resumable: trained supernets and students are resumed from their
checkpoints, finished scores are kept in ``<out>/supernet-bench/state.json``.
Run it with ``nice -n 19``. The reproducing command line is printed at the end.

Parallel stand-alone students (what produced bench/results/supernet.json)::

    ARGS="--data ../shared/data/news/news_articles.csv.gz --out bench/out --steps 100 --tiny-steps 150 \
          --batch-size 8 --seq-len 64 --heldout 64 --max-rows 4000 --archs 8 --checkpoint-every 10 \
          --threads 1 --proxy-train-rows 600 --proxy-eval-rows 300 --throughput-archs 8"
    nice -n 19 python bench/bench_supernet.py $ARGS --wait-for-workers &
    for w in 0 1 2 3; do nice -n 19 python bench/bench_supernet.py $ARGS --worker $w --workers 4 & done

Use one torch thread per process on a shared machine: with two threads and
other work on the cores, OpenMP's waiting threads made each step several
times slower here.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def _state_path(out: Path) -> Path:
    return out / "supernet-bench" / "state.json"


def _load_state(out: Path) -> dict:
    p = _state_path(out)
    return json.loads(p.read_text()) if p.is_file() else {}


def _save_state(out: Path, state: dict) -> None:
    p = _state_path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, p)


def _train(space, folder: Path, args, *, random_subnets: int, steps: int | None = None) -> dict:
    from hwnas.supernet.train import TrainConfig, train_supernet

    cfg = TrainConfig(
        space=space, out=str(folder), teacher=args.teacher, data=args.data, steps=steps or args.steps,
        batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr, random_subnets=random_subnets,
        heldout=args.heldout, checkpoint_every=args.checkpoint_every, seed=args.seed, max_rows=args.max_rows,
        cache_dir=str(args.out / "supernet-bench" / "token-cache"), threads=args.threads,
        train_embeddings=args.train_embeddings, teacher_cache=str(args.out / "supernet-bench" / "teacher-cache"),
    )
    resume = (folder / "checkpoints" / "latest.json").is_file()
    result = train_supernet(cfg, resume=resume, on_status=lambda s: print("  " + s, flush=True),
                            on_progress=lambda ev: print(f"  checkpoint step {ev.completed}", flush=True) if ev.checkpoint else None)
    meta = json.loads((folder / "supernet.json").read_text())
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines() if line.strip()]
    total_wall = float(meta.get("train_wall_s", result.total_wall_s))
    return {
        "steps": meta["steps_done"],
        "wall_s": total_wall,
        "samples_per_s": meta["steps_done"] * args.batch_size / total_wall if total_wall else float("nan"),
        "first_loss_mean": log[0]["mean"] if log else None,
        "last10_loss_mean": float(np.mean([e["mean"] for e in log[-10:]])) if log else None,
        "first_loss_largest": log[0]["largest"] if log else None,
        "last10_loss_largest": float(np.mean([e["largest"] for e in log[-10:]])) if log else None,
        "first_loss_smallest": log[0]["smallest"] if log else None,
        "last10_loss_smallest": float(np.mean([e["smallest"] for e in log[-10:]])) if log else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="text source; default: the embedded SST-2 sentences")
    ap.add_argument("--teacher", default="default")
    ap.add_argument("--out", type=Path, default=Path("bench/out"))
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tiny-steps", type=int, default=None, help="steps for the tiny supernet (default: --steps)")
    ap.add_argument("--proxy-train-rows", type=int, default=1000)
    ap.add_argument("--proxy-eval-rows", type=int, default=500)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--heldout", type=int, default=128)
    ap.add_argument("--max-rows", type=int, default=4000)
    ap.add_argument("--archs", type=int, default=8)
    ap.add_argument("--checkpoint-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-embeddings", action="store_true", help="also train the word embeddings (slower)")
    ap.add_argument("--throughput-archs", type=int, default=8)
    ap.add_argument("--results", type=Path, default=Path("bench/results/supernet.json"))
    ap.add_argument("--worker", type=int, default=None, help="only train stand-alone students i with i %% workers == worker")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--wait-for-workers", action="store_true", help="do not train stand-alone students; wait for --worker processes")
    args = ap.parse_args(argv)

    import torch
    from scipy.stats import kendalltau

    from hwnas.space import SearchSpace, get_space
    from hwnas.supernet import load_supernet
    from hwnas.supernet.estimate import SupernetEstimator

    torch.set_num_threads(args.threads)
    cpu0 = time.process_time()
    state = _load_state(args.out) if args.worker is None else {}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("worker", "workers", "wait_for_workers")}
    if state.get("settings", settings) != settings:
        print(f"note: settings differ from the saved state in {_state_path(args.out)}; earlier results are recomputed")
        state = {}
    state["settings"] = settings
    if args.worker is not None:
        state = {"settings": settings}

    proxy_kw = {"proxy_train_rows": args.proxy_train_rows, "proxy_eval_rows": args.proxy_eval_rows}
    supernets = args.out / "supernets"
    if args.worker is None:
        for name in ("tiny", "small"):
            key = f"train_{name}"
            steps = args.tiny_steps if name == "tiny" and args.tiny_steps else args.steps
            print(f"== training supernet {name} ({steps} steps, batch {args.batch_size}, seq {args.seq_len})", flush=True)
            state[key] = _train(name, supernets / name, args, random_subnets=2, steps=steps)
            _save_state(args.out, state)
            t = state[key]
            print(f"   {name}: steps {t['steps']}, wall {t['wall_s']:.0f} s, {t['samples_per_s']:.2f} samples/s, "
                  f"loss (mean of sandwich) {t['first_loss_mean']:.4f} -> {t['last10_loss_mean']:.4f} (last 10 steps)", flush=True)


    small = get_space("small")
    archs = small.sample_lhs(args.archs, seed=args.seed, include_corners=False)
    state["archs"] = [a.key for a in archs]
    standalone = state.setdefault("standalone", {})
    for i, arch in enumerate(archs):
        if args.worker is not None and i % args.workers != args.worker:
            continue
        folder = args.out / "supernet-bench" / "standalone" / f"L{arch.layers}-H{arch.hidden}-A{arch.heads}-I{arch.ffn}"
        done = folder / "bench_result.json"
        while args.wait_for_workers and not done.is_file():
            time.sleep(20)  # a --worker process trains this one
        if done.is_file():
            standalone[arch.key] = json.loads(done.read_text())
            continue
        print(f"== stand-alone student {i + 1}/{len(archs)}: {arch.key}", flush=True)
        one = SearchSpace(name=f"one-{i}", layers=(arch.layers,), hidden=(arch.hidden,), heads=(arch.heads,), ffn=(arch.ffn,))
        train = _train(one, folder, args, random_subnets=0)
        sn_one = load_supernet(folder)
        loss = float(SupernetEstimator(sn_one, "loss", cache=False).heldout_loss([arch])[0])
        proxy = float(SupernetEstimator(sn_one, "proxy", cache=False, **proxy_kw).score([arch])[0])
        standalone[arch.key] = {"train": train, "heldout_loss": loss, "proxy": proxy}
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(standalone[arch.key], indent=2))
        os.replace(tmp, done)
        print(f"   held-out loss {loss:.4f}, proxy accuracy {proxy:.3f}, {train['wall_s']:.0f} s", flush=True)
    if args.worker is not None:
        return 0
    _save_state(args.out, state)

    sn_small = load_supernet(supernets / "small")
    est = {}
    for metric in ("loss", "proxy"):
        key = f"supernet_{metric}"
        if key not in state:
            e = SupernetEstimator(sn_small, metric, cache=False, **(proxy_kw if metric == "proxy" else {}))
            t0 = time.perf_counter()
            state[key] = e.score(archs).tolist()
            state[key + "_wall_s"] = time.perf_counter() - t0
            _save_state(args.out, state)
        est[metric] = np.array(state[key])
    sa_loss = np.array([standalone[a.key]["heldout_loss"] for a in archs])
    sa_proxy = np.array([standalone[a.key]["proxy"] for a in archs])
    taus = {
        "supernet_loss_vs_standalone_loss": kendalltau(est["loss"], -sa_loss),
        "supernet_proxy_vs_standalone_proxy": kendalltau(est["proxy"], sa_proxy),
        "supernet_loss_vs_standalone_proxy": kendalltau(est["loss"], sa_proxy),
        "params_vs_standalone_loss": kendalltau([a.num_parameters() for a in archs], -sa_loss),
    }
    state["kendall_tau"] = {k: {"tau": float(v.statistic), "p": float(v.pvalue)} for k, v in taus.items()}

    # Throughput: fresh estimators (no cache), architectures not scored before.
    if "throughput" not in state:
        extra = [a for a in small.sample_random(args.throughput_archs + len(archs), seed=args.seed + 1) if a not in archs][: args.throughput_archs]
        tp = {}
        for metric in ("loss", "proxy"):
            e = SupernetEstimator(sn_small, metric, cache=False, **(proxy_kw if metric == "proxy" else {}))
            t0 = time.perf_counter()
            e._prepare()
            setup = time.perf_counter() - t0
            t1 = time.perf_counter()
            e.score(extra)
            wall = time.perf_counter() - t1
            t2 = time.perf_counter()
            e.score(extra)
            cached = time.perf_counter() - t2
            tp[metric] = {"archs": len(extra), "setup_s": setup, "wall_s": wall, "archs_per_s": len(extra) / wall,
                          "cached_archs_per_s": len(extra) / cached if cached > 0 else float("inf")}
        state["throughput"] = tp
    state["bench_cpu_s_this_invocation"] = time.process_time() - cpu0
    _save_state(args.out, state)

    print("\n== results (supernet small vs stand-alone students)")
    print(f"{'architecture':42s} {'SN -loss':>9s} {'SA loss':>8s} {'SN proxy':>9s} {'SA proxy':>9s}")
    for a, sl, l, sp, p in zip(archs, est["loss"], sa_loss, est["proxy"], sa_proxy, strict=True):
        print(f"{a.key:42s} {sl:9.4f} {l:8.4f} {sp:9.3f} {p:9.3f}")
    for name in ("tiny", "small"):
        t = state[f"train_{name}"]
        print(f"train {name}: {t['steps']} steps, {t['wall_s']:.0f} s wall, {t['samples_per_s']:.2f} samples/s, "
              f"largest {t['first_loss_largest']:.4f} -> {t['last10_loss_largest']:.4f}, smallest {t['first_loss_smallest']:.4f} -> {t['last10_loss_smallest']:.4f}")
    for k, v in state["kendall_tau"].items():
        print(f"Kendall tau {k}: {v['tau']:.3f} (p={v['p']:.3f}, n={len(archs)})")
    for metric, v in state["throughput"].items():
        print(f"estimator {metric}: {v['archs_per_s']:.2f} archs/s uncached ({v['archs']} archs, setup {v['setup_s']:.1f} s), "
              f"{v['cached_archs_per_s']:.0f} archs/s cached")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(state, indent=2) + "\n")
    print(f"results written to {args.results}")
    print("reproduce: nice -n 19 python bench/bench_supernet.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
