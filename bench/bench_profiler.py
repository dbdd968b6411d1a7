"""Profiler benchmarks: test-retest repeatability, agreement with torch.utils.benchmark, overhead.

    # repeatability of two profile files measured in separate processes
    python bench/bench_profiler.py retest bench/results/cpu-small-holdout.jsonl bench/results/cpu-small-holdout-retest.jsonl
    # hwnas's cpu median against torch.utils.benchmark.Timer.blocked_autorange, same process
    python bench/bench_profiler.py reference --n 20
    # wall time of a profile run against the time spent in timed inference
    python bench/bench_profiler.py overhead --device cpu --samples 100

Every subcommand prints the command line that reproduces it.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _banner(argv: list[str]) -> None:
    print("$ python " + " ".join(shlex.quote(a) for a in argv))


def _keyed(path: str, field: str) -> dict:
    from hwnas.profiling import read_records

    return {(r["layers"], r["hidden"], r["heads"], r["ffn"], r["batch_size"], r["seq_len"]): r[field] for r in read_records(path)}


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Relative difference of ``b`` against ``a`` (both milliseconds)."""
    rel = np.abs(b - a) / a
    return {
        "n": len(a),
        "within_5": float(np.mean(rel <= 0.05)),
        "within_10": float(np.mean(rel <= 0.10)),
        "mape": float(np.mean(rel)),
        "worst": float(rel.max()),
        "mean_signed": float(np.mean((b - a) / a)),
    }


def cmd_retest(args) -> None:
    for field in ("latency_ms", "p25_ms", "min_ms"):
        first, second = _keyed(args.first, field), _keyed(args.second, field)
        common = sorted(set(first) & set(second))
        if not common:
            sys.exit("the two files share no measurement")
        a = np.array([first[k] for k in common])
        b = np.array([second[k] for k in common])
        s = agreement(a, b)
        label = {"latency_ms": "median (latency_ms)", "p25_ms": "p25", "min_ms": "min"}[field]
        print(f"{label:20s} n={s['n']}  within ±5%: {s['within_5']:.1%}  within ±10%: {s['within_10']:.1%}  "
              f"MAPE: {s['mape']:.2%}  worst: {s['worst']:.1%}  mean drift (2nd vs 1st): {s['mean_signed']:+.2%}")
    spreads = list(_keyed(args.first, "spread").values()) + list(_keyed(args.second, "spread").values())
    noisy = list(_keyed(args.first, "noisy").values()) + list(_keyed(args.second, "noisy").values())
    print(f"median within-run spread (IQR/median): {np.median(spreads):.1%}; flagged noisy: {sum(noisy)}/{len(noisy)}")


def cmd_reference(args) -> None:
    import torch
    from torch.utils.benchmark import Timer

    from hwnas.devices import Shape, TimingConfig, create_device, measure_interleaved
    from hwnas.space import get_space

    device = create_device("cpu", threads=1)
    archs = get_space(args.space).sample(args.n, plan="lhs", seed=args.seed)
    shape = Shape(1, args.seq_len)
    ratios = []
    print(f"{'architecture':42s} {'hwnas ms':>9s} {'Timer ms':>9s} {'ratio':>6s}")
    for arch in archs:
        runner = device.prepare(arch, shape)
        with device.pinned():
            hw = measure_interleaved([runner], TimingConfig())[0].median_ms
            timer = Timer(stmt="runner.run()", globals={"runner": runner}, num_threads=1)
            ref = timer.blocked_autorange(min_run_time=1.0).median * 1e3
        runner.close()
        ratios.append(hw / ref)
        print(f"{arch.key:42s} {hw:9.3f} {ref:9.3f} {hw / ref:6.3f}")
    r = np.array(ratios)
    print(f"hwnas/Timer median ratio: {np.median(r):.3f} (p10 {np.percentile(r, 10):.3f}, p90 {np.percentile(r, 90):.3f}); "
          f"goal 0.97-1.03; torch {torch.__version__}")


def cmd_overhead(args) -> None:
    from hwnas.profiling import read_records

    out = Path(tempfile.mkdtemp()) / "overhead.jsonl"
    cmd = ["hwnas", "profile", "--device", args.device, "--space", args.space, "--samples", str(args.samples),
           "--max-time", args.max_time, "--seed", str(args.seed), "--out", str(out)]
    print("$ " + " ".join(cmd))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rs = list(read_records(out))
    parts = {k: np.array([r[k] for r in rs]) for k in ("build_s", "export_s", "warmup_s", "timed_s")}
    timed = parts["timed_s"].sum()
    other = wall - sum(p.sum() for p in parts.values())
    n = len(rs)
    per_sample_overhead = (wall - timed) / n
    print(f"samples: {n}, wall: {wall:.1f} s, timed inference: {timed:.1f} s, wall/timed: {wall / timed:.2f}")
    for k, v in parts.items():
        print(f"  {k:9s} total {v.sum():7.1f} s   per sample median {np.median(v):.3f} s")
    print(f"  other     total {other:7.1f} s   (process start, imports, fingerprint, writing)")
    print(f"mean per-sample overhead (wall - timed) / n: {per_sample_overhead:.2f} s; "
          f"median per-sample build+export+warm-up: {np.median(parts['build_s'] + parts['export_s'] + parts['warmup_s']):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("retest")
    p.add_argument("first")
    p.add_argument("second")
    p.set_defaults(fn=cmd_retest)
    p = sub.add_parser("reference")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--space", default="small")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(fn=cmd_reference)
    p = sub.add_parser("overhead")
    p.add_argument("--device", default="cpu")
    p.add_argument("--space", default="small")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--max-time", default="4s")
    p.add_argument("--seed", type=int, default=11)
    p.set_defaults(fn=cmd_overhead)
    args = parser.parse_args()
    _banner(sys.argv)
    args.fn(args)


if __name__ == "__main__":
    main()
