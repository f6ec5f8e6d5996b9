#!/bin/bash
# PLAN.md step 2: strided students of a teacher with a validation split, 36 against 96 epochs, two at a time.
cd "$(dirname "$0")/../.."
out=benchmarks/out
for epochs in 36 96; do
  for seed in 0 1; do
    .venv/bin/digitlab distill $out/hw/robust-plain-s0 --weight 0.7 --seed $seed --epochs $epochs --stem stride \
      --threads 1 --out $out/val-stride-e$epochs-s$seed > $out/val-stride-e$epochs-s$seed.log 2>&1 &
  done
  wait
done
