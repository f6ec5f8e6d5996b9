#!/usr/bin/env bash
# Step 1 addendum (PLAN.md): `best` with elastic distortion of 3 px, paired with the baseline.
exec bash "$(dirname "$0")/paired.sh" elastic3 --elastic 3
