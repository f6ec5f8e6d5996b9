#!/bin/bash
# PLAN.md, information only: two born-again `robust` final models of the step-1 committee, one thread each.
cd "$(dirname "$0")/../.."
out=benchmarks/out
for seed in 3 4; do
  .venv/bin/digitlab distill $out/robust-plain-final --recipe robust --weight 0.7 --seed $seed --threads 1 \
    --out $out/born-again-robust-s$seed > $out/born-again-robust-s$seed.log 2>&1 &
done
wait
