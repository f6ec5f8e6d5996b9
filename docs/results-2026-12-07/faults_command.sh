#!/usr/bin/env bash
# Page faults of the real command: `digitlab train --recipe fast --epochs 1` as it comes, and with glibc malloc's trim
# and mmap thresholds raised by its environment variables (the values step_probe.py's --malloc tuned sets), two
# rounds, interleaved. From the repo root: bash docs/results-2026-12-07/faults_command.sh
set -euo pipefail
for round in 1 2; do
  for mode in default tuned; do
    rm -rf /tmp/faults-$mode
    env_args=()
    [ $mode = tuned ] && env_args=(MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_MMAP_THRESHOLD_=33554432)
    env "${env_args[@]}" /usr/bin/time -f "round $round $mode: %e s, %R minor page faults, peak %M KiB" \
      .venv/bin/digitlab train --recipe fast --epochs 1 --out /tmp/faults-$mode 2>&1 | grep -E '^epoch|page faults'
  done
done
