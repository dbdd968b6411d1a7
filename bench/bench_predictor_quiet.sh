#!/usr/bin/env bash
# Predictor accuracy against quiet measurements.
# The 400 training profiles were collected while the machine was heavily loaded (load
# average 8-10 on 2 cores) and run about 6% slow; the retest profiles of 60 held-out
# architectures were taken later on a quieter machine. This checks (1) the base predictor
# on the quiet measurements and (2) the same predictor corrected with 20 quiet samples
# (`--base`), evaluated on the other 40 architectures as measured by a separate process.
#   bash bench/bench_predictor_quiet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
R=bench/results
T=$(mktemp -d)
head -200 $R/cpu-small-train.jsonl > $T/train200.jsonl
head -20 $R/retest-cpu-a.jsonl > $T/recal20.jsonl
python - "$T" <<'PY'
import json, sys
t = sys.argv[1]
key = lambda r: (r["layers"], r["hidden"], r["heads"], r["ffn"])
seen = {key(json.loads(l)) for l in open(f"{t}/recal20.jsonl")}
rows = [l for l in open("bench/results/retest-cpu-b.jsonl") if key(json.loads(l)) not in seen]
open(f"{t}/eval40.jsonl", "w").writelines(rows)
PY
set -x
hwnas predictor fit $T/train200.jsonl --out $T/base200.hwnas | tail -1
hwnas predictor eval $T/base200.hwnas $T/eval40.jsonl
hwnas predictor eval $R/cpu-small.hwnas $T/eval40.jsonl
hwnas predictor fit $T/recal20.jsonl --base $T/base200.hwnas --out $T/recal200.hwnas | tail -1
hwnas predictor eval $T/recal200.hwnas $T/eval40.jsonl
hwnas predictor fit $T/recal20.jsonl --base $R/cpu-small.hwnas --out $T/recal400.hwnas | tail -1
hwnas predictor eval $T/recal400.hwnas $T/eval40.jsonl
