#!/usr/bin/env bash
# Minor page faults, wall time and peak memory of whole commands at two commits, interleaved: one epoch of the
# reference CNN (`digitlab train --epochs 1`) and of the robust recipe (`train --recipe robust --epochs 1`), before
# keep_freed_memory (2344267) and with it (c59e8f7). From the repo root:
#   bash docs/results-2026-12-07d/faults_commands.sh [ROUNDS]
set -euo pipefail
PY=$PWD/.venv/bin/python
ROUNDS=${1:-2}
for tag in before after; do
  commit=$([ $tag = before ] && echo 2344267 || echo c59e8f7)
  rm -rf /tmp/fc-$tag && git worktree add -q --detach /tmp/fc-$tag $commit
done
for round in $(seq "$ROUNDS"); do
  for args in "train --epochs 1 --seed 0" "train --recipe robust --epochs 1 --seed 0"; do
    for tag in before after; do
      rm -rf /tmp/fc-run
      (cd /tmp/fc-$tag && /usr/bin/time -f "%e s, %R minor page faults, peak %M KiB" -o /tmp/fc.time \
        "$PY" -m digitlab $args --out /tmp/fc-run > /tmp/fc.log)
      echo "round $round, $args, $tag: $(cat /tmp/fc.time); $(grep '^test accuracy' /tmp/fc.log | cut -d'(' -f1)"
    done
  done
done
git worktree remove --force /tmp/fc-before && git worktree remove --force /tmp/fc-after
