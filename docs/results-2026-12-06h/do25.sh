#!/usr/bin/env bash
# Step 3 (PLAN.md): `best` with dropout 0.25 (the seed's: 0.5), paired with the baseline.
exec bash "$(dirname "$0")/paired.sh" do25 --dropout 0.25
