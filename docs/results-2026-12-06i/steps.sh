#!/usr/bin/env bash
# PLAN.md's steps 1 and 2, one after the other, from the repo root; logs and outputs beside this file.
#   bash docs/results-2026-12-06i/steps.sh [1] [2]
set -euo pipefail
D=docs/results-2026-12-06i
B=.venv/bin
epochs() { grep '^epoch ' "$1" | sed 's/  [0-9.]* s (.*//'; }  # epoch lines without their timing
for step in ${*:-1 2}; do  # no arguments: both steps
  case $step in
  1)
    bash benchmarks/run_peers.sh > $D/run_peers.log 2>&1
    mkdir -p $D/peers && cp benchmarks/out/peers/results_*.json $D/peers/
    $B/python benchmarks/bench_throughput.py --peers benchmarks/out/peers > $D/bench_throughput_peers.txt 2>&1
    $B/python benchmarks/bench_throughput.py --bf16 --peers benchmarks/out/peers > $D/bench_throughput_peers_bf16.txt 2>&1
    $B/python docs/results-2026-12-06g/engine_probe.py > $D/engine_probe.txt 2>&1
    $B/python benchmarks/bench_time_to_accuracy.py --recipe fast --epochs 5 --seeds 0,1,2 \
      > $D/bench_time_to_accuracy_fast.txt 2>&1
    ;;
  2)
    $B/digitlab train --recipe best --seed 0 --out benchmarks/out/best-s0 > $D/best-s0.log 2>&1
    if [ "$(epochs $D/best-s0.log)" = "$(epochs docs/results-2026-12-06h/best-do25-s0.log)" ]; then
      echo "best seed 0 equals the eighth session's epoch for epoch: its baseline is reused" | tee $D/baseline.txt
    else
      echo "best seed 0 differs from the eighth session's: seeds 1 and 2 run here" | tee $D/baseline.txt
      for s in 1 2; do
        $B/digitlab train --recipe best --seed $s --out benchmarks/out/best-s$s > $D/best-s$s.log 2>&1
      done
    fi
    bash $D/paired.sh e48 --epochs 48
    ;;
  esac
done
