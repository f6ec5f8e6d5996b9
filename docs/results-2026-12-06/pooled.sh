#!/bin/bash
# PLAN.md, information only: step 1's distilled students with the pooled stem (the fast recipe's), seeds 0-2.
cd "$(dirname "$0")/../.."
out=benchmarks/out
run() {
  .venv/bin/digitlab distill $out/robust-plain-final --weight 0.7 --seed $1 --epochs 36 --threads 1 \
    --out $out/distill-robust-plain-final-pool-e36-w0.7-s$1 > $out/student-pool-w0.7-s$1.log 2>&1
}
run 0 & run 1 & wait
run 2
