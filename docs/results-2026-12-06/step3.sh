#!/bin/bash
# PLAN.md step 3: the six final students, two at a time with one thread each: distilled and labels-only for each seed.
cd "$(dirname "$0")/../.."
out=benchmarks/out
for seed in 3 4 5; do
  for weight in 0.7 0; do
    .venv/bin/digitlab distill $out/robust-plain-final --weight $weight --seed $seed --epochs 96 --stem stride \
      --threads 1 --out $out/distill-robust-plain-final-stride-e96-w$weight-s$seed \
      > $out/student-stride-w$weight-s$seed.log 2>&1 &
  done
  wait
done
