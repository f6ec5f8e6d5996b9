#!/bin/bash
# PLAN.md's students, two trainings at a time with one thread each, each a final student of the step-1 committee:
#   students.sh STEM EPOCHS "WEIGHTS" SEED...
#   students.sh stride 36 "0.7 0" 0 1 2     # step 1          students.sh stride 96 "0.7 0" 3 4 5   # step 3
#   students.sh pool 36 0.7 0 1 2           # information     students.sh pool 96 0.7 3 4 5         # information
cd "$(dirname "$0")/../.."
out=benchmarks/out
stem=$1 epochs=$2 weights=$3
shift 3
running=0
for seed in "$@"; do
  for weight in $weights; do
    name=$stem-e$epochs-w$weight-s$seed
    .venv/bin/digitlab distill $out/robust-plain-final --weight $weight --seed $seed --epochs $epochs --stem $stem \
      --threads 1 --out $out/distill-robust-plain-final-$name > $out/student-$name.log 2>&1 &
    running=$((running + 1))
    if [ $running = 2 ]; then wait; running=0; fi
  done
done
wait
