#!/usr/bin/env bash
# PLAN.md's step 2 (the speed lines on this CPU), one command after the other, from the repo root; outputs beside
# this file. The peers' venvs are built first, untimed (INSTALL_ONLY=1 bash benchmarks/run_peers.sh).
#   bash docs/results-2026-12-07/steps.sh
set -euo pipefail
D=docs/results-2026-12-07
B=.venv/bin
bash benchmarks/run_peers.sh > $D/run_peers.log 2>&1
mkdir -p $D/peers && cp benchmarks/out/peers/results_*.json $D/peers/
$B/python benchmarks/bench_throughput.py --peers benchmarks/out/peers > $D/bench_throughput_peers.txt 2>&1
$B/python docs/results-2026-12-06g/engine_probe.py > $D/engine_probe.txt 2>&1
$B/python benchmarks/bench_time_to_accuracy.py --recipe fast --epochs 5 --seeds 0,1,2 \
  > $D/bench_time_to_accuracy_fast.txt 2>&1
