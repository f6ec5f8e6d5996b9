#!/bin/bash
# Alternating processes: glibc malloc defaults vs mmap threshold 32 MiB + trim threshold 1 GiB.
cd /work/main
for r in 0 1 2 3 4 5; do
  for v in A B; do
    if [ $(( r % 2 )) -eq 1 ]; then v=$([ $v = A ] && echo B || echo A); fi
    if [ $v = A ]; then out=$(.venv/bin/python docs/results-2026-12-07d/faults.py); else out=$(MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 .venv/bin/python docs/results-2026-12-07d/faults.py); fi
    echo "round $r $v $(date +%T): $(echo "$out" | tail -3 | awk '{print $3}' | tr -d , | tr '\n' ' ')"
  done
done
