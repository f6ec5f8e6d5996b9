#!/usr/bin/env bash
# waits for the clean-clone CI to end, then trains the fashion recipe, seeds 2 and 3, one after the other, alone
cd /work/main
while ! grep -q '^rc=' /tmp/ci.log 2>/dev/null; do sleep 10; done
OUT=benchmarks/out
for seed in 2 3; do
  run=$OUT/fashion-s$seed
  rm -rf "$run"
  { echo "== $(date -Is) seed $seed"; uptime; } >> $OUT/fashion_runs.txt
  /usr/bin/time -f "wall %e s (train)" .venv/bin/digitlab train --recipe fashion --seed $seed --out "$run" >> $OUT/fashion_s$seed.txt 2>&1
  /usr/bin/time -f "wall %e s (evaluate test --tta)" .venv/bin/digitlab evaluate "$run" --tta --json >> $OUT/fashion_s${seed}_test_tta.json 2>> $OUT/fashion_s$seed.txt
  /usr/bin/time -f "wall %e s (evaluate val --tta)" .venv/bin/digitlab evaluate "$run" --split val --tta --json >> $OUT/fashion_s${seed}_val_tta.json 2>> $OUT/fashion_s$seed.txt
  echo "== $(date -Is) seed $seed done" >> $OUT/fashion_runs.txt
done
