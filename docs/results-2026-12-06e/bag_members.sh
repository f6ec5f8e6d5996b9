#!/bin/sh
# Step 1's six members, one after the other (PLAN.md): what `digitlab ensemble --member-splits --seed 20` trains.
set -e
for i in 0 1 2 3 4 5; do
    seed=$((20 + i))
    echo "member-$i seed $seed start $(date -u +%H:%M:%S)"
    .venv/bin/digitlab train --recipe best --arch deep --width 32 --dropout 0 --epochs 14 --precision bf16 \
        --val-size 12000 --seed "$seed" --split-seed "$seed" --out "benchmarks/out/deep32-bag80/member-$i"
    echo "member-$i end $(date -u +%H:%M:%S)"
done
