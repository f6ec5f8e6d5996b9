#!/usr/bin/env bash
# paired.sh TAG FLAGS...: `best` with FLAGS, seeds 0-2 in order, into benchmarks/out/best-TAG-sS and LOGS/best-TAG-sS.log,
# stopping at the first seed whose validation accuracy is more than 0.04 points below the baseline's (the plan's
# disqualification). elastic3.sh, ls0.sh and do25.sh call it (PLAN.md's Steps 1-3). `--dropout 0.5` is `best`'s
# dropout when these ran (Step 3 changed it to 0.25): FLAGS come after it, so do25.sh's --dropout 0.25 still wins.
# Later sessions call it with their own baseline and log folder: BASE="V0 V1 V2" (validation %) LOGS=DIR.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TAG=$1
shift
read -r -a BASE <<< "${BASE:-99.58 99.56 99.72}"  # default: best-s{0,1,2}.log of results-2026-12-06g, reproduced
LOGS=${LOGS:-$HERE}
for s in 0 1 2; do
  .venv/bin/digitlab train --recipe best --seed $s --dropout 0.5 "$@" --out benchmarks/out/best-$TAG-s$s \
    > "$LOGS/best-$TAG-s$s.log" 2>&1
  val=$(sed -n 's/^best epoch [0-9]*: validation accuracy \([0-9.]*\)%.*/\1/p' "$LOGS/best-$TAG-s$s.log")
  if python3 -c "import sys; sys.exit(0 if $val < ${BASE[$s]} - 0.04 - 1e-9 else 1)"; then
    echo "seed $s: validation $val % < ${BASE[$s]} - 0.04: disqualified, stopping"; exit 0
  fi
done
