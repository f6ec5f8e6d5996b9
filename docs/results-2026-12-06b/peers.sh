#!/usr/bin/env bash
# #11's peer ratios on this session's machine (README "Against the peers"): the Keras peer (the faster one on this
# CPU type, 2026-12-04) for 3 epochs, then digitlab's training step (`bench_throughput.py --bf16 --peers`) and
# inference (`bench_inference.py`, the reference CNN) right after it. Nothing else on the machine; from the repo root.
set -euo pipefail
D=docs/results-2026-12-06b
B=.venv/bin
[ -x /tmp/venv-keras/bin/python ] || { python3 -m venv /tmp/venv-keras; /tmp/venv-keras/bin/pip install -q tensorflow-cpu==2.21.0 scipy==1.17.1; }
[ -d benchmarks/out/reference-e1 ] || $B/digitlab train --epochs 1 --out benchmarks/out/reference-e1 > /dev/null
rm -rf /tmp/peers && cp -r ../shared/peers /tmp/peers && mkdir -p $D/peers
(cd /tmp/peers && MNIST_DIR=$HOME/.cache/digitlab/mnist /tmp/venv-keras/bin/python keras_seed.py --epochs 3 \
   --out results_keras.json > keras.log 2>&1)
cp /tmp/peers/results_keras.json /tmp/peers/keras.log $D/peers/
(time $B/python benchmarks/bench_throughput.py --bf16 --peers $D/peers) 2>&1 | tee $D/bench_throughput_bf16_peers.txt
$B/python benchmarks/bench_inference.py benchmarks/out/reference-e1 | tee $D/bench_inference_reference-e1.txt
