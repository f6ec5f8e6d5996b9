#!/bin/sh
# Step 1 of PLAN.md: the M3 final models with an EMA of their weights (seeds 0-2, paired with deep32-bf16-e14-final).
.venv/bin/digitlab ensemble --recipe best --arch deep --width 32 --dropout 0 --epochs 14 --precision bf16 \
    --val-size 0 --ema 0.999 --members 3 --jobs 1 --out benchmarks/out/deep32-bf16-e14-ema-final
