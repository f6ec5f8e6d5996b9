#!/usr/bin/env bash
# Step 4 of PLAN.md: `fast` with the robust recipe's corruption options, seeds 0-2, plain and --deskew, then the
# robustness bench on the six. From the repo root; nothing else running.
set -uo pipefail
PY=${PY:-.venv/bin/python}
D=docs/results-2026-12-07c
R=benchmarks/out/deskew
CORRUPT=(--elastic 1 --stroke 0.1 --blur 0.075 --contrast 0.1 --noise 0.075 --invert 0.05 --erase 0.05 --outline 0.05
  --lines 0.075)
date -u
for S in 0 1 2; do
  for kind in robust robust-deskew; do
    flag=(); [ $kind = robust-deskew ] && flag=(--deskew)
    [ -f $R/$kind-$S/metrics.json ] && continue
    /usr/bin/time -f "$kind-$S: %e s" $PY -m digitlab.cli train --recipe fast --split-seed 0 --seed $S "${CORRUPT[@]}" \
      "${flag[@]}" --out $R/$kind-$S > $R/$kind-$S.log 2>&1 || echo "$kind-$S failed"
  done
done
date -u
(cd benchmarks && ../$PY bench_robustness.py ../$R/robust-{0,1,2} ../$R/robust-deskew-{0,1,2}) \
  > $D/deskew_robust_robustness.txt 2>&1
date -u
