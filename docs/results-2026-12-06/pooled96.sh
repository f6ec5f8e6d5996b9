#!/bin/bash
# PLAN.md, information only: the step-3 students (seeds 3-5, 96 epochs, distilled) with the pooled stem.
cd "$(dirname "$0")/../.."
out=benchmarks/out
run() {
  .venv/bin/digitlab distill $out/robust-plain-final --weight 0.7 --seed $1 --epochs 96 --stem pool --threads 1 \
    --out $out/distill-robust-plain-final-pool-e96-w0.7-s$1 > $out/student-pool-e96-w0.7-s$1.log 2>&1
}
run 3 & run 4 & wait
run 5
