#!/usr/bin/env bash
# The `fast` recipe's whole command (`digitlab train --recipe fast`, seed 0, wall time from the shell) at two commits,
# interleaved A B A B ...: before and after curves.png stopped being redrawn after every epoch. From the repo root:
#   bash docs/results-2026-12-06i/curves_ab.sh BEFORE_COMMIT AFTER_COMMIT [ROUNDS]
# Since 2026-12-07 benchmarks/ab_commits.sh does the work (and also prints peak memory).
exec bash benchmarks/ab_commits.sh "$1" "$2" "${3:-3}"
