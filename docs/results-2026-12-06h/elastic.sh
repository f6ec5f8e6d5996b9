#!/usr/bin/env bash
# Step 1 (PLAN.md): `best` seed 0 again with the seed's ranges (is the 06g baseline reproduced epoch for epoch?),
# then `best` with elastic distortion of 2 and 3 pixels, seeds 0-2, paired by seed with the baseline.
# `--dropout 0.5`: `best`'s dropout when this ran (this session's Step 3 changed it to 0.25).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
.venv/bin/digitlab train --recipe best --dropout 0.5 --seed 0 --out benchmarks/out/best-again-s0 > "$HERE/best-again-s0.log" 2>&1
for e in 2 3; do
  for s in 0 1 2; do
    .venv/bin/digitlab train --recipe best --dropout 0.5 --seed $s --elastic $e --out benchmarks/out/best-elastic$e-s$s \
      > "$HERE/best-elastic$e-s$s.log" 2>&1
  done
done
