"""Fuzzing figures: how many bad inputs hwnas was given, how many it mishandled, and how long it took.

Runs the adversarial corpus (tests/adversarial/cases.py: every command with bad
files, bad numbers, bad architectures, conflicting outputs) in this process, then
every Hypothesis fuzz target (tests/adversarial/fuzz.py) for ``--examples``
generated inputs each. A failure is a case that did not end in its documented
exit code with one error line and every pre-existing file untouched, or a fuzz
input on which a parser raised anything but a one-line ``HwnasError``.

    PYTHONPATH=$PWD .venv/bin/python bench/bench_fuzz.py                 # corpus + 200 examples per target
    PYTHONPATH=$PWD .venv/bin/python bench/bench_fuzz.py --examples 2000 --no-corpus
    PYTHONPATH=$PWD .venv/bin/python bench/bench_fuzz.py --json results.json

Times are wall-clock on whatever machine runs it; on a shared machine they vary
by tens of percent between runs (say so when you quote them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_corpus(ws: dict[str, str], tmp: Path, verbose: bool) -> dict:
    from tests.adversarial.cases import all_cases
    from tests.adversarial.runner import run_case

    cases = [c for c in all_cases() if not (c.needs_non_root and os.geteuid() == 0)]
    failures = []
    t0 = time.perf_counter()
    for i, case in enumerate(cases):
        outcome = run_case(case, ws, tmp / f"case-{i}")
        if not outcome.ok:
            failures.append({"id": case.id, "problems": outcome.problems, "stderr": outcome.stderr[-300:]})
            if verbose:
                print(f"  FAIL {case.id}: {outcome.problems}", file=sys.stderr)
    return {"cases": len(cases), "failures": len(failures), "seconds": time.perf_counter() - t0, "failed": failures}


def run_fuzz(ws: dict[str, str], examples: int, seed: int, verbose: bool) -> dict:
    from tests.adversarial.fuzz import TARGETS

    return {name: _fuzz_target(name, target, strategy, ws, examples, seed, verbose)
            for name, (target, strategy) in TARGETS.items()}


def _fuzz_target(name: str, target, strategy, ws: dict[str, str], examples: int, seed: int, verbose: bool) -> dict:
    """One target's Hypothesis run (its own function, so the test closure binds this target, not a loop variable)."""
    from hypothesis import HealthCheck, given, seed as hseed, settings

    stats = {"cases": 0, "failures": 0, "first": None}

    @hseed(seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def check(value):
        stats["cases"] += 1
        try:
            if name == "bundle manifests":
                target(Path(ws["bundle"]), value)
            else:
                target(value)
        except Exception as exc:  # noqa: BLE001 (deliberate: counted, not raised: the bench wants the failure count)
            stats["failures"] += 1
            if stats["first"] is None:
                stats["first"] = f"{type(exc).__name__}: {str(exc)[:200]} on {value!r:.200}"
                if verbose:
                    traceback.print_exc()

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # data warnings of the parsers are expected here, not failures
        check()
    stats["seconds"] = time.perf_counter() - t0
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=200, help="Hypothesis examples per fuzz target.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-corpus", action="store_true", help="Only the fuzz targets.")
    ap.add_argument("--no-fuzz", action="store_true", help="Only the corpus.")
    ap.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    from tests.adversarial.workspace import build_workspace

    tmp = Path(tempfile.mkdtemp(prefix="hwnas-bench-fuzz-"))
    t0 = time.perf_counter()
    ws = build_workspace(tmp / "ws")
    setup_s = time.perf_counter() - t0
    result = {"setup_s": setup_s, "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()}
    print(f"workspace built in {setup_s:.1f} s (load average {result['load_avg'][0]:.1f} on {os.cpu_count()} cores)")
    if not args.no_corpus:
        corpus = run_corpus(ws, tmp, args.verbose)
        result["corpus"] = corpus
        print(f"corpus: {corpus['cases']} cases, {corpus['failures']} failures, {corpus['seconds']:.1f} s "
              f"({corpus['seconds'] / max(1, corpus['cases']) * 1e3:.0f} ms per case)")
        for f in corpus["failed"][:20]:
            print(f"  {f['id']}: {'; '.join(f['problems'])}")
    if not args.no_fuzz:
        fuzz = run_fuzz(ws, args.examples, args.seed, args.verbose)
        result["fuzz"] = fuzz
        print(f"{'fuzz target':<22} {'cases':>7} {'failures':>8} {'time':>8}")
        for name, s in fuzz.items():
            print(f"{name:<22} {s['cases']:>7} {s['failures']:>8} {s['seconds']:>7.1f}s")
            if s["first"]:
                print(f"  first failure: {s['first']}")
        total = sum(s["cases"] for s in fuzz.values())
        bad = sum(s["failures"] for s in fuzz.values())
        secs = sum(s["seconds"] for s in fuzz.values())
        print(f"{'total':<22} {total:>7} {bad:>8} {secs:>7.1f}s")
    parts = [result["corpus"]] if "corpus" in result else []
    parts += list(result.get("fuzz", {}).values())
    result["total"] = {"cases": sum(p["cases"] for p in parts), "failures": sum(p["failures"] for p in parts),
                       "seconds": sum(p["seconds"] for p in parts), "load_avg_end": os.getloadavg()}
    t = result["total"]
    print(f"ALL: {t['cases']} cases, {t['failures']} failures, {t['seconds']:.1f} s "
          f"(load average {result['load_avg'][0]:.1f} at the start, {t['load_avg_end'][0]:.1f} at the end, "
          f"{os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
