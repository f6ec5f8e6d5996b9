#!/usr/bin/env bash
# The GPU checks of issue #11, as one short script for a lent GPU machine (about 6-8 minutes on one H100/H200):
#   1. bench_throughput on the device: training images/s of every recipe's step (eager, compiled, bf16), inference
#   2. the `gpu` recipe with --trace-test, then bench_time_to_accuracy --traced: time to 99.0 / 99.5 / 99.7 %
#   3. CPU/GPU parity: the GPU-trained run evaluated with PyTorch on the GPU and on the CPU; a 2-member `fast`
#      ensemble and a small lab, each run with --device cuda and --device cpu, their tables side by side
# It needs no network: MNIST travels with the working tree, gzipped (`make device-data` writes .device/mnist, which
# git ignores), and digitlab runs from the checkout (PYTHONPATH) with the machine's own torch.
#   device run: carry [".device"], command "bash benchmarks/gpu_check.sh", timeout_s 600
#   here, as a dry run of the plumbing on the CPU:  DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh
# Everything lands in $OUT (the device tool's folder; benchmarks/out/gpu here): at most 8 files.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/out/gpu}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 DIGITLAB_PROGRESS=0
if [ -d .device/mnist ]; then  # the carried copy becomes digitlab's data cache (verified by SHA-256 on first use)
  export DIGITLAB_DATA_DIR=/tmp/digitlab-data
  mkdir -p "$DIGITLAB_DATA_DIR/mnist"
  for f in .device/mnist/*.gz; do gunzip -c "$f" > "$DIGITLAB_DATA_DIR/mnist/$(basename "$f" .gz)"; done
fi
QUICK_ARGS=()
[ -n "${QUICK:-}" ] && QUICK_ARGS=(--epochs 1 --train-size 3000)
RUNS=$(mktemp -d)
into() {  # into FILE SECONDS COMMAND...: append the command, its output, exit code and seconds to $OUT/FILE
  local name=$1 file=$OUT/$1 limit=$2 start rc
  shift 2
  start=$(date +%s)
  echo "## $*" >> "$file"
  timeout "$limit" "$@" >> "$file" 2>&1
  rc=$?
  echo "## exit $rc after $(($(date +%s) - start)) s" >> "$file"
  echo "$name ($1 ...): exit $rc"
}

{ date -Is; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  git log -1 --format='commit %H'; } > "$OUT/machine.txt" 2>&1

[ -z "${QUICK:-}" ] && into throughput.txt 240 $PY benchmarks/bench_throughput.py --device "$DEVICE" --compile --bf16
into train_gpu.txt 300 $PY -m digitlab.cli train --recipe gpu --device "$DEVICE" --trace-test "${QUICK_ARGS[@]}" \
  --out "$RUNS/gpu"
cp "$RUNS/gpu/history.json" "$OUT/history_gpu.json"
into time_to_accuracy.txt 90 $PY benchmarks/bench_time_to_accuracy.py --traced "$RUNS/gpu" --no-baseline
for d in "$DEVICE" cpu; do  # parity: the same model evaluated, and the same ensemble and lab run, on each device
  into parity.txt 60 $PY -m digitlab.cli evaluate "$RUNS/gpu" --engine torch --device "$d" --json
  into parity.txt 150 $PY -m digitlab.cli ensemble --recipe fast --members 2 --epochs 2 "${QUICK_ARGS[@]}" \
    --device "$d" --engine torch --out "$RUNS/ensemble-$d"  # measured in PyTorch on that device
  into parity.txt 150 $PY -m digitlab.cli lab --epochs 2 --sizes 5000 --strategies none,bn --device "$d" \
    --out "$RUNS/lab-$d"
done
ls -l "$OUT"
