#!/usr/bin/env bash
# Step 4 (PLAN.md): final models of the new `best` (dropout 0.25): all 60,000 images, the last of 24 epochs.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
for s in 0 1 2; do
  .venv/bin/digitlab train --recipe best --seed $s --val-size 0 --out benchmarks/out/best-final-s$s \
    > "$HERE/best-final-s$s.log" 2>&1
done
