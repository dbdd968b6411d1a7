"""The ``cuda`` device on a real GPU: repeatability, agreement with ``torch.utils.benchmark``, graphs and dtypes.

    python bench/bench_cuda.py --space small --n 8 --batch-sizes 1,32 --dtypes fp32,fp16,bf16 --out cuda.json

For every dtype, CUDA-graph setting and batch size, ``n`` architectures sampled
from the space (Latin hypercube, fixed seed) are prepared on the GPU and timed
twice with hwnas's interleaved protocol (two passes, different round orders),
then once with ``torch.utils.benchmark.Timer.blocked_autorange``. It prints:

* test-retest: pass 2 against pass 1 (share within +-5%, MAPE, worst);
* hwnas / Timer: the ratio of medians (hwnas times with CUDA events, Timer with
  host clocks around synchronised blocks; they should agree within a few %);
* the speed-up of CUDA graphs over eager per architecture, and of each dtype over fp32;
* each measurement's own spread (IQR / median).

``--device cpu`` runs the same protocol on the CPU (``--dtypes fp32``, no graphs), to check the script itself
on a machine without a GPU. Figures hold for the GPU, driver and clocks the fingerprint names, nothing more.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def _stats(first: list[float], second: list[float]) -> dict[str, float]:
    a, b = np.asarray(first), np.asarray(second)
    rel = np.abs(b - a) / a
    return {"within_5": float(np.mean(rel <= 0.05)), "mape": float(np.mean(rel)), "worst": float(rel.max())}


def _q(values: list[float]) -> str:
    v = np.asarray(values)
    return f"median {np.median(v):.3f} (min {v.min():.3f}, max {v.max():.3f})"


def run_group(device, archs, shape, config, seed: int, reference_s: float) -> list[dict]:
    """Prepare ``archs``, time them in two interleaved passes and with Timer; one row per architecture."""
    from torch.utils.benchmark import Timer

    from hwnas.devices import measure_interleaved

    runners = []
    try:
        for arch in archs:
            runners.append(device.prepare(arch, shape))
        with device.pinned():
            first = measure_interleaved(runners, config, seed=seed)
            second = measure_interleaved(runners, config, seed=seed + 1)
            refs = [Timer(stmt="runner.run()", globals={"runner": r}, num_threads=device.threads or 1)
                    .blocked_autorange(min_run_time=reference_s).median * 1e3 for r in runners]
        rows = []
        for arch, runner, m1, m2, ref_ms in zip(archs, runners, first, second, refs, strict=True):
            rows.append({"arch": arch.key, "pass1_ms": m1.median_ms, "pass2_ms": m2.median_ms, "timer_ms": ref_ms,
                         "spread1": m1.spread, "spread2": m2.spread, "noisy": bool(m1.noisy or m2.noisy),
                         "export_s": float(getattr(runner, "export_s", 0.0) or 0.0)})
        return rows
    finally:
        for runner in runners:
            runner.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--space", default="small")
    parser.add_argument("--n", type=int, default=8, help="architectures per group")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--dtypes", default="fp32,fp16,bf16")
    parser.add_argument("--graphs", default="both", choices=("both", "on", "off"))
    parser.add_argument("--max-time", type=float, default=0.5, help="seconds of timed inference per architecture and pass")
    parser.add_argument("--reference-s", type=float, default=0.2, help="Timer.blocked_autorange's min_run_time")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="write every row and the fingerprint as JSON")
    args = parser.parse_args(argv)
    print("$ python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]))

    from hwnas.devices import Shape, TimingConfig, create_device
    from hwnas.errors import HwnasError
    from hwnas.space import get_space

    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    graph_settings = {"both": [False, True], "on": [True], "off": [False]}[args.graphs]
    if args.device == "cpu":
        graph_settings = [False]
    archs = get_space(args.space).sample(args.n, plan="lhs", seed=args.seed)
    config = TimingConfig(max_time_s=args.max_time)

    fingerprint = None
    groups: dict[str, list[dict]] = {}
    for dtype in dtypes:
        for graphs in graph_settings:
            options = {"dtype": dtype, "threads": 1}
            if args.device == "cuda":
                options["cuda_graphs"] = graphs
            try:
                device = create_device(args.device, **options)
            except HwnasError as exc:
                print(f"{dtype} graphs={graphs}: skipped: {exc}")
                continue
            if fingerprint is None:
                fingerprint = device.fingerprint()
                keys = ("gpu_name", "compute_capability", "cuda", "cudnn", "driver", "sm_clock_mhz", "max_sm_clock_mhz",
                        "mem_clock_mhz", "power_limit_w", "persistence_mode", "torch", "transformers", "cpu_model")
                print("fingerprint: " + ", ".join(f"{k}={fingerprint[k]}" for k in keys if k in fingerprint))
            for bs in batch_sizes:
                label = f"{dtype} {'graphs' if graphs else 'eager'} b{bs}"
                start = time.perf_counter()
                try:
                    rows = run_group(device, archs, Shape(bs, args.seq_len), config, args.seed, args.reference_s)
                except HwnasError as exc:
                    print(f"{label}: failed: {exc}")
                    continue
                groups[label] = rows
                s = _stats([r["pass1_ms"] for r in rows], [r["pass2_ms"] for r in rows])
                ratio = [r["pass2_ms"] / r["timer_ms"] for r in rows]
                spread = [max(r["spread1"], r["spread2"]) for r in rows]
                print(f"{label:18s} latency {_q([r['pass2_ms'] for r in rows])} ms | retest within ±5% {s['within_5']:.0%}, "
                      f"MAPE {s['mape']:.2%}, worst {s['worst']:.1%} | hwnas/Timer {_q(ratio)} | "
                      f"spread {_q(spread)}, noisy {sum(r['noisy'] for r in rows)}/{len(rows)} "
                      f"({time.perf_counter() - start:.0f} s)")

    def speedups(slow: str, fast: str) -> list[float] | None:
        if slow not in groups or fast not in groups:
            return None
        return [a["pass2_ms"] / b["pass2_ms"] for a, b in zip(groups[slow], groups[fast], strict=True)]

    print("speed-ups, per architecture (the first setting's latency over the second's):")
    for dtype in dtypes:
        for bs in batch_sizes:
            s = speedups(f"{dtype} eager b{bs}", f"{dtype} graphs b{bs}")
            if s:
                print(f"  graphs over eager, {dtype} b{bs}: {_q(s)}")
    for dtype in dtypes[1:]:
        for mode in ("eager", "graphs"):
            for bs in batch_sizes:
                s = speedups(f"{dtypes[0]} {mode} b{bs}", f"{dtype} {mode} b{bs}")
                if s:
                    print(f"  {dtype} over {dtypes[0]}, {mode} b{bs}: {_q(s)}")
    if args.out:
        args.out.write_text(json.dumps({"argv": argv if argv is not None else sys.argv[1:], "fingerprint": fingerprint,
                                        "archs": [a.key for a in archs], "groups": groups}, indent=1, default=str))
        print(f"rows: {args.out}")
    return 0 if groups else 1


if __name__ == "__main__":
    sys.exit(main())
