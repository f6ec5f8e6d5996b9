#!/usr/bin/env bash
# Step 5 of PLAN.md: the twelve models of Steps 3 and 4 on the validation fonts and the validation split's
# corruptions. From the repo root; nothing else running.
set -uo pipefail
PY=${PY:-.venv/bin/python}
D=docs/results-2026-12-07c
R=benchmarks/out/deskew
RUNS=($R/plain-{0,1,2} $R/deskew-{0,1,2} $R/robust-{0,1,2} $R/robust-deskew-{0,1,2})
date -u
(cd benchmarks && ../$PY bench_fonts_val.py --more "${RUNS[@]/#/../}") > $D/deskew_fonts_val.txt 2>&1
date -u
for run in "${RUNS[@]}"; do
  $PY -m digitlab.cli robustness $run --split val --force > /dev/null 2>&1 || echo "$run failed"
  $PY -c "import json, sys; r = json.load(open('$run/robustness_val.json')); print('$run', r['clean_accuracy'], r['mean_corrupted_accuracy'])"
done > $D/deskew_robustness_val.txt
date -u
