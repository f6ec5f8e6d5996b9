#!/usr/bin/env bash
# Run the peer programs (Keras + ImageDataGenerator, PyTorch + torchvision DataLoader; the programs users would
# pick instead) on this machine, so that bench_throughput --peers can quote same-session ratios.
# The peers live outside digitlab, in ../shared/peers (or PEERS=...); they are copied to a scratch folder and run
# there by their own run.sh (it builds its venvs in /tmp on first use: tensorflow-cpu, torch + torchvision).
#   bash benchmarks/run_peers.sh            # about 8 minutes on 2 cores, plus the installs the first time
# Results: benchmarks/out/peers/results_{keras,torch}.json and the table in benchmarks/out/peers/logs/table.md
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PEERS=${PEERS:-$HERE/../../shared/peers}
DEST="$HERE/out/peers"
[ -f "$PEERS/run.sh" ] || { echo "no peers at $PEERS (set PEERS=...)" >&2; exit 2; }
mkdir -p "$DEST"
cp "$PEERS"/*.py "$PEERS"/run.sh "$DEST"/
bash "$DEST/run.sh"
