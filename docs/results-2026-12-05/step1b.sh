#!/usr/bin/env bash
# Step 1b (PLAN.md): the robust recipe on the 5,000-image validation split, seeds 0 and 1, without and with
# --handwriting-fonts, the two runs of a seed side by side with one thread each; then the validation fonts.
set -euo pipefail
OUT=benchmarks/out/hw
for seed in 0 1; do
  for v in hw plain; do
    flag=$([ $v = hw ] && echo --handwriting-fonts || true)
    [ -f $OUT/robust-$v-s$seed/metrics.json ] || \
      .venv/bin/digitlab train --recipe robust --val-size 5000 --seed $seed --threads 1 $flag \
        --out $OUT/robust-$v-s$seed > $OUT/robust-$v-s$seed.log 2>&1 &
  done
  wait
done
.venv/bin/python benchmarks/bench_fonts_val.py --more $OUT/robust-plain-s0 $OUT/robust-plain-s1 $OUT/robust-hw-s0 \
  $OUT/robust-hw-s1
