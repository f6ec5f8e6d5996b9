#!/usr/bin/env bash
# Step 1 of PLAN.md, one command after the other, nothing else running. From the repo root.
set -euo pipefail
D=docs/results-2026-12-07b
PY=.venv/bin/python
date -u
$PY $D/denormal_probe.py > $D/denormal_probe.txt 2>&1
date -u
$PY $D/optimizer_ab.py --rounds 5 > $D/optimizer_ab.txt 2>&1
date -u
bash benchmarks/ab_commits.sh 3e18236 0a7facb 3 > $D/ab_fused_seed0.txt 2>&1
for seed in 1 2; do
  bash benchmarks/ab_commits.sh 3e18236 0a7facb 1 -- train --recipe fast --seed $seed > $D/ab_fused_seed$seed.txt 2>&1
done
date -u
