#!/usr/bin/env bash
# paired.sh TAG FLAGS...: `best` with FLAGS, seeds 0-2, paired with today's `best` (dropout 0.25) and stopping at the
# first disqualified seed (PLAN.md's rule), by the eighth session's paired.sh. The baseline: this session's
# best-s0.log (equal epoch for epoch to the eighth session's best-do25-s0.log) and that session's seeds 1 and 2,
# validation 99.66 / 99.66 / 99.76 %. `--dropout 0.25` restores `best`'s own dropout after that script's 0.5.
HERE="$(cd "$(dirname "$0")" && pwd)"
TAG=$1
shift
BASE="99.66 99.66 99.76" LOGS=$HERE exec bash "$HERE/../results-2026-12-06h/paired.sh" "$TAG" --dropout 0.25 "$@"
