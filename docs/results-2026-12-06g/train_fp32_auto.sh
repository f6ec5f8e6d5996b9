#!/usr/bin/env bash
# Step 1's measurement (PLAN.md): `digitlab train` with its defaults, seed 0, in fp32 and then with --precision auto
# (the default), one after the other; nothing else of ours running. Logs beside this script.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
rm -f "${XDG_CACHE_HOME:-$HOME/.cache}/digitlab/precision.json"  # auto probes afresh, as on a new machine
for p in fp32 auto; do
  start=$(date +%s.%N)
  .venv/bin/digitlab train --precision $p --out benchmarks/out/reference-$p > "$HERE/train_$p.log" 2>&1
  echo "$p: $(echo "$(date +%s.%N) - $start" | bc) s for the whole command" >> "$HERE/train_fp32_auto.txt"
done
