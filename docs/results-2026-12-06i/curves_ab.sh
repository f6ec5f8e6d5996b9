#!/usr/bin/env bash
# The `fast` recipe's whole command (`digitlab train --recipe fast`, seed 0, wall time from the shell) at two commits,
# interleaved A B A B ...: before and after curves.png stopped being redrawn after every epoch. From the repo root:
#   bash docs/results-2026-12-06i/curves_ab.sh BEFORE_COMMIT AFTER_COMMIT [ROUNDS]
# Each commit is checked out in a scratch worktree and run with the repo's .venv (`python -m digitlab` from there).
set -euo pipefail
PY=$PWD/.venv/bin/python
ROUNDS=${3:-3}
for tag in before after; do
  commit=$([ $tag = before ] && echo "$1" || echo "$2")
  rm -rf /tmp/ab-$tag && git worktree add -q --detach /tmp/ab-$tag "$commit"
done
for round in $(seq "$ROUNDS"); do
  for tag in before after; do
    start=$(date +%s.%N)
    (cd /tmp/ab-$tag && "$PY" -m digitlab train --recipe fast --seed 0 --out /tmp/ab-run-$tag-$round > /tmp/ab-$tag-$round.log)
    end=$(date +%s.%N)
    test=$(sed -n 's/^test accuracy \([0-9.]*%\).*/\1/p' /tmp/ab-$tag-$round.log)
    python3 -c "print(f'round $round $tag: {$end - $start:.1f} s, test $test')"
  done
done
git worktree remove --force /tmp/ab-before && git worktree remove --force /tmp/ab-after
