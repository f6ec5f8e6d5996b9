#!/usr/bin/env bash
# Step 3 of PLAN.md: twelve `fast` runs (seeds 0-5, plain and --deskew) on one validation split, their committees,
# and the robustness bench on seeds 0-2 of each. From the repo root; nothing else running.
set -uo pipefail
PY=${PY:-.venv/bin/python}
D=docs/results-2026-12-07c
R=benchmarks/out/deskew
mkdir -p $R
date -u
for S in 0 1 2 3 4 5; do
  for kind in plain deskew; do
    flag=(); [ $kind = deskew ] && flag=(--deskew)
    [ -f $R/$kind-$S/metrics.json ] && continue
    /usr/bin/time -f "$kind-$S: %e s" $PY -m digitlab.cli train --recipe fast --split-seed 0 --seed $S "${flag[@]}" \
      --out $R/$kind-$S > $R/$kind-$S.log 2>&1 || echo "$kind-$S failed"
    tail -1 $R/$kind-$S.log
  done
done
date -u
committee() {  # committee NAME RUN...
  local name=$1; shift
  $PY -m digitlab.cli ensemble --from "$@" --out $R/committee-$name --force > $R/committee-$name.log 2>&1 \
    || echo "committee $name failed"
}
committee A $R/plain-{0,1,2}
committee B $R/deskew-{0,1,2}
committee C $R/plain-{0,1,2} $R/deskew-{0,1,2}
committee D $R/plain-{0,1,2,3,4,5}
committee E $R/deskew-{0,1,2,3,4,5}
committee F $R/plain-{0,1,2,3,4,5} $R/deskew-{0,1,2,3,4,5}
date -u
$PY $D/deskew_table.py $R > $D/deskew_table.txt
(cd benchmarks && ../$PY bench_robustness.py ../$R/plain-{0,1,2} ../$R/deskew-{0,1,2}) > $D/deskew_robustness.txt 2>&1
date -u
