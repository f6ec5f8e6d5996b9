#!/usr/bin/env bash
# paired.sh TAG FLAGS...: `best` with FLAGS, seeds 0-2 in order, into benchmarks/out/best-TAG-sS and best-TAG-sS.log,
# stopping at the first seed whose validation accuracy is more than 0.04 points below the baseline's (PLAN.md's
# rule). The baseline: this session's best-sS.log where it ran, else the eighth session's best-do25-sS.log.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
TAG=$1
shift
val() { sed -n 's/^best epoch [0-9]*: validation accuracy \([0-9.]*\)%.*/\1/p' "$1"; }
for s in 0 1 2; do
  base_log=$HERE/best-s$s.log
  [ -f "$base_log" ] || base_log=$HERE/../results-2026-12-06h/best-do25-s$s.log
  .venv/bin/digitlab train --recipe best --seed $s "$@" --out benchmarks/out/best-$TAG-s$s > "$HERE/best-$TAG-s$s.log" 2>&1
  v=$(val "$HERE/best-$TAG-s$s.log")
  b=$(val "$base_log")
  if python3 -c "import sys; sys.exit(0 if $v < $b - 0.04 - 1e-9 else 1)"; then
    echo "seed $s: validation $v % < $b - 0.04: disqualified, stopping"; exit 0
  fi
done
