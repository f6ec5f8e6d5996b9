#!/usr/bin/env bash
# Step 3 (PLAN.md): `best` with the seed's affine ranges and with them x1.5 (rotation, shift, zoom), paired by seed.
# `--dropout 0.5`: `best`'s dropout when this ran (2026-12-06h's Step 3 changed it to 0.25).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
for s in 0 1 2; do
  .venv/bin/digitlab train --recipe best --dropout 0.5 --seed $s --out benchmarks/out/best-s$s > "$HERE/best-s$s.log" 2>&1
  .venv/bin/digitlab train --recipe best --dropout 0.5 --seed $s --rotation 12 --shift 0.12 --zoom 0.12 \
    --out benchmarks/out/best-wide-s$s > "$HERE/best-wide-s$s.log" 2>&1
done
