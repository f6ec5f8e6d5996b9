#!/usr/bin/env bash
# One digitlab command at two commits, interleaved A B A B ...: its whole wall time from the shell, its test accuracy
# and its peak memory (max RSS), so that a change's effect on what a user waits for is measured with the host's
# drift spread over both sides. From the repo root:
#   bash benchmarks/ab_commits.sh BEFORE_COMMIT AFTER_COMMIT [ROUNDS] [-- DIGITLAB_ARGS...]
# Default command: `digitlab train --recipe fast --seed 0`. Each commit is checked out in a scratch worktree and run
# with the repo's .venv (`python -m digitlab` from there); the run folders go to /tmp.
set -euo pipefail
PY=$PWD/.venv/bin/python
BEFORE=$1 AFTER=$2 ROUNDS=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
if [ $# -gt 0 ]; then ARGS=("$@"); else ARGS=(train --recipe fast --seed 0); fi
rm -rf /tmp/ab-run-*  # this script's run folders from an earlier call: digitlab never overwrites a run
for tag in before after; do
  commit=$([ $tag = before ] && echo "$BEFORE" || echo "$AFTER")
  rm -rf /tmp/ab-$tag && git worktree add -q --detach /tmp/ab-$tag "$commit"
done
for round in $(seq "$ROUNDS"); do
  for tag in before after; do
    (cd /tmp/ab-$tag && /usr/bin/time -f "%e %M" -o /tmp/ab-$tag-$round.time \
      "$PY" -m digitlab "${ARGS[@]}" --out /tmp/ab-run-$tag-$round > /tmp/ab-$tag-$round.log)
    read -r seconds kib < /tmp/ab-$tag-$round.time
    test=$(sed -n 's/^test accuracy \([0-9.]*%\).*/\1/p' /tmp/ab-$tag-$round.log)
    echo "round $round $tag: $seconds s, test $test, peak memory $((kib / 1024)) MiB"
  done
done
cmp -s <(grep '^epoch ' /tmp/ab-before-1.log | sed 's/  [0-9.]* s (.*//') \
  <(grep '^epoch ' /tmp/ab-after-1.log | sed 's/  [0-9.]* s (.*//') \
  && echo "round 1's epochs (timings aside) identical before and after" || echo "round 1's epochs differ"
git worktree remove --force /tmp/ab-before && git worktree remove --force /tmp/ab-after
