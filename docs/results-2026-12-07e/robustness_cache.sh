# `digitlab robustness RUN --limit 300` before the picture cache (a worktree at BEFORE), then with it, cold (its
# cached pictures removed) and warm, then before again; wall time of each command and whether the figures are equal.
# Usage: bash docs/results-2026-12-07e/robustness_cache.sh BEFORE RUN_DIR
set -euo pipefail
cd /work/main
before=$1 run=$2 out=/tmp/robustness-cache
cache=$(.venv/bin/python -c "from digitlab.datasets import data_root; print(data_root() / 'corrupted')")
rm -rf $out && mkdir -p $out && git worktree add -f $out/code "$before" -q
.venv/bin/digitlab robustness "$run" --limit 300 --out $out/warm-up.json > /dev/null  # model.onnx, corrupted sets
for label in before cold warm before-again; do
  [ $label = cold ] && rm -f "$cache"/*-photo-like-* "$cache"/*-uci-writers-*
  code=/work/main; [[ $label == before* ]] && code=$out/code
  start=$(date +%s.%N)
  (cd $code && /work/main/.venv/bin/python -m digitlab.cli robustness "$run" --limit 300 --out $out/$label.json) \
    > /dev/null  # from the code's folder: the editable install's finder outranks PYTHONPATH, not the working folder
  echo "$label: $(echo "$(date +%s.%N) - $start" | bc | cut -c1-5) s"
done
git worktree remove --force $out/code
.venv/bin/python -c "
import json
runs = [json.load(open(f'$out/{n}.json')) for n in ('before', 'cold', 'warm', 'before-again')]
print('identical figures:', all(r == runs[0] for r in runs))"
