#!/usr/bin/env bash
# Step 2 (PLAN.md): `best` with label smoothing 0 (its own: 0.1), paired with the baseline.
exec bash "$(dirname "$0")/paired.sh" ls0 --label-smoothing 0
