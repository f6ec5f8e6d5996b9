#!/usr/bin/env bash
# Steps 1 and 2 of PLAN.md, one after the other, nothing else running. From the repo root.
set -uo pipefail
PY=${PY:-.venv/bin/python}
D=docs/results-2026-12-07c
date -u
$PY $D/ceiling_probe.py --rounds 8 > $D/ceiling_probe.txt 2>&1
date -u
(cd benchmarks && ../$PY bench_peers_paired.py --rounds 5 --steps 250) > $D/bench_peers_paired.txt 2>&1
date -u
