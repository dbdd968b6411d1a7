#!/usr/bin/env bash
# Test-retest of the profiler: the same 60 architectures of space small measured
# twice, in two separate processes, on cpu and on onnxruntime (seq 128, batch 1, 1 thread).
#   bash bench/retest_profiles.sh && python bench/bench_profiler.py retest bench/results/retest-cpu-a.jsonl bench/results/retest-cpu-b.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
R=bench/results
A=$R/small-retest60-archs.txt
for dev in cpu onnxruntime; do
  for run in a b; do
    out=$R/retest-$dev-$run.jsonl
    [ -s "$out" ] && flag=--resume || flag=
    hwnas profile --device $dev --space small --archs $A --max-time 2.5s --seed $([ $run = a ] && echo 0 || echo 1) --out $out $flag
  done
done
