#!/bin/bash
# Every GPU path of hwnas in one pass, for a machine with an NVIDIA GPU and a CUDA build of torch.
#   bash bench/gpu_checks.sh OUTDIR            # what was run on a lent H200: docs/devices.md, "Measured on a GPU"
#   DEVICE=cpu DTYPE=fp32 bash bench/gpu_checks.sh OUTDIR   # the same script on a CPU, to check the script itself
#   STEPS="profile-graphs verify-graphs" bash bench/gpu_checks.sh OUTDIR   # only the steps named
# Each step has its own time limit and the script goes on after a failed step; OUTDIR/gpu.log holds everything.
set -u
OUT=${1:?usage: gpu_checks.sh OUTDIR}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
DTYPE=${DTYPE:-fp16}
SAMPLES=${SAMPLES:-32}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec > >(tee -a "$OUT/gpu.log") 2>&1

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2 start rc
  shift 2
  if [ -n "${STEPS:-}" ] && [[ " $STEPS " != *" $name "* ]]; then return; fi
  echo "=== $name (limit ${limit} s): $*"
  start=$(date +%s)
  timeout "$limit" "$@"
  rc=$?
  echo "=== $name: exit $rc after $(( $(date +%s) - start )) s"
}

step probe 60 bash -c "nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,persistence_mode --format=csv 2>&1;
  $PY -c 'import sys, torch, transformers, onnxruntime as ort; print(sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"transformers\", transformers.__version__, \"onnxruntime\", ort.__version__, ort.get_available_providers())';
  $PY -c 'import tensorrt; print(\"tensorrt\", tensorrt.__version__)' 2>&1 | tail -1; echo \"libnvinfer in ldconfig: \$(ldconfig -p | grep -c nvinfer)\";
  $PY -m hwnas.cli.main devices"
step pytest-devices 150 $PY -m pytest -q -p no:cacheprovider -rfs --timeout 120 tests/devices
step bench-cuda 200 $PY bench/bench_cuda.py --device "$DEVICE" --n 6 --batch-sizes 1,32 --dtypes "${DTYPES:-fp32,fp16,bf16}" \
  --max-time 0.3 --reference-s 0.1 --out "$OUT/bench_cuda.json"
step profile 120 $PY -m hwnas.cli.main profile --device "$DEVICE" --dtype "$DTYPE" --space small --samples "$SAMPLES" \
  --seq-len 128 --batch-size 1,32 --max-time 0.2s --threads 1 --quiet --out "$OUT/profile.jsonl"
step profile-retest 120 $PY -m hwnas.cli.main profile --device "$DEVICE" --dtype "$DTYPE" --space small --archs "$OUT/profile.jsonl" \
  --seq-len 128 --batch-size 1,32 --max-time 0.2s --threads 1 --seed 1 --quiet --out "$OUT/profile-retest.jsonl"
step retest 30 $PY bench/bench_profiler.py retest "$OUT/profile.jsonl" "$OUT/profile-retest.jsonl"
step predictor 90 $PY -m hwnas.cli.main predictor fit "$OUT/profile.jsonl" --out "$OUT/predictor.hwnas" --plot "$OUT/parity.png"
# CUDA graphs: the forward pass replayed as one graph, what a latency-bound deployment does (no launch overhead)
step profile-graphs ${GRAPHS_LIMIT:-100} $PY -m hwnas.cli.main profile --device "$DEVICE" --device-option cuda_graphs=true --dtype "$DTYPE" \
  --space small --samples "${GRAPHS_SAMPLES:-$SAMPLES}" --seq-len 128 --batch-size 1,32 --max-time 0.2s --threads 1 --quiet --out "$OUT/graphs.jsonl"
step profile-graphs-retest 100 $PY -m hwnas.cli.main profile --device "$DEVICE" --device-option cuda_graphs=true --dtype "$DTYPE" \
  --space small --archs "$OUT/graphs.jsonl" --seq-len 128 --batch-size 1,32 --max-time 0.2s --threads 1 --seed 1 --quiet \
  --out "$OUT/graphs-retest.jsonl"
step graphs-retest 30 $PY bench/bench_profiler.py retest "$OUT/graphs.jsonl" "$OUT/graphs-retest.jsonl"
step predictor-graphs 60 $PY -m hwnas.cli.main predictor fit "$OUT/graphs.jsonl" --out "$OUT/graphs.hwnas" --no-plot
# verification rebuilds the device with the predictor's recorded options (cuda_graphs) and compares on new architectures
step verify-graphs 60 $PY -c "
from hwnas.predictors import load_predictor
from hwnas.search.verify import verify, summarise
from hwnas.space import get_space
p = load_predictor('$OUT/graphs.hwnas')
archs = get_space('small').sample(8, plan='random', seed=123)
for bs in (1, 32):
    rs = verify(archs, device='$DEVICE', predictor=p, budget_ms=1.0, seq_len=128, batch_size=bs)
    print('batch', bs, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in summarise(rs).items()})
"
step pytest-training 150 $PY -m pytest -q -p no:cacheprovider -rfs --timeout 100 ${PYTEST_ARGS:-} tests/training
