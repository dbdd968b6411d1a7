#!/usr/bin/env bash
# Collects the reference CPU/ONNX Runtime profiles under bench/results/ that the
# profiler, predictor and search benchmarks read. Resumable: rerun after a kill.
#   bash bench/collect_profiles.sh
set -euo pipefail
cd "$(dirname "$0")/.."
R=bench/results
mkdir -p "$R"
resume() { [ -s "$1" ] && echo --resume || true; }

# Held-out architectures: 100 of space small that the LHS training plan does not contain.
if [ ! -s "$R/small-holdout-archs.txt" ]; then
python - <<'PY'
from hwnas.space import get_space
sp = get_space("small")
train = set(sp.sample(400, plan="lhs", seed=0))
rest = [a for a in sp.sample(len(sp), plan="random", seed=1) if a not in train]
open("bench/results/small-holdout-archs.txt", "w").write("\n".join(a.key for a in rest[:100]) + "\n")
PY
fi

hwnas profile --device cpu --space small --samples 400 --seed 0 --max-time 1.5s --out $R/cpu-small-train.jsonl $(resume $R/cpu-small-train.jsonl)
hwnas profile --device cpu --space small --archs $R/small-holdout-archs.txt --max-time 2.5s --out $R/cpu-small-holdout.jsonl $(resume $R/cpu-small-holdout.jsonl)
hwnas profile --device cpu --space small --archs $R/small-holdout-archs.txt --max-time 2.5s --seed 1 --out $R/cpu-small-holdout-retest.jsonl $(resume $R/cpu-small-holdout-retest.jsonl)
hwnas profile --device onnxruntime --space small --archs $R/small-holdout-archs.txt --max-time 2.5s --out $R/ort-small-holdout.jsonl $(resume $R/ort-small-holdout.jsonl)
hwnas profile --device onnxruntime --space small --archs $R/small-holdout-archs.txt --max-time 2.5s --seed 1 --out $R/ort-small-holdout-retest.jsonl $(resume $R/ort-small-holdout-retest.jsonl)
hwnas profile --device cpu --threads 2 --space small --archs $R/small-holdout-archs.txt --max-time 2.5s --out $R/cpu2t-small-holdout.jsonl $(resume $R/cpu2t-small-holdout.jsonl)
