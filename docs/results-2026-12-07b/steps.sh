#!/usr/bin/env bash
# PLAN.md's Step 1b (the grid, whole `fast` command at two commits) and Step 2 (the speed lines on this CPU), one
# command after the other, nothing else running; outputs beside this file. From the repo root, after
# INSTALL_ONLY=1 bash benchmarks/run_peers.sh (the peers' venvs, untimed):
#   bash docs/results-2026-12-07b/steps.sh FUSED_COMMIT GRID_COMMIT
set -euo pipefail
D=docs/results-2026-12-07b
B=.venv/bin
date -u
bash benchmarks/ab_commits.sh "$1" "$2" 3 > $D/ab_grid_seed0.txt 2>&1
for seed in 1 2; do
  bash benchmarks/ab_commits.sh "$1" "$2" 1 -- train --recipe fast --seed $seed > $D/ab_grid_seed$seed.txt 2>&1
done
date -u
bash benchmarks/run_peers.sh > $D/run_peers.log 2>&1
mkdir -p $D/peers && cp benchmarks/out/peers/results_*.json $D/peers/
date -u
$B/python benchmarks/bench_throughput.py --peers benchmarks/out/peers > $D/bench_throughput_peers.txt 2>&1
date -u
$B/python benchmarks/bench_time_to_accuracy.py --recipe fast --epochs 5 --seeds 0,1,2 \
  > $D/bench_time_to_accuracy_fast.txt 2>&1
date -u
