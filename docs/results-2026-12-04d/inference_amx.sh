#!/usr/bin/env bash
# Inference on the AMX Xeon, one session: digitlab's engines for three models, then the Keras peer (README "Ship the
# model"). Run from the repository root after the training runs, nothing else on the machine.
set -euo pipefail
D=docs/results-2026-12-04d
B=.venv/bin
# the speed yardsticks: weights do not matter for speed, one epoch each
[ -d benchmarks/out/reference-e1 ] || $B/digitlab train --epochs 1 --out benchmarks/out/reference-e1 > /dev/null
# the distilled student's architecture (the fast recipe's compact CNN, width 16)
[ -d benchmarks/out/compact-e1 ] || $B/digitlab train --recipe fast --epochs 1 --out benchmarks/out/compact-e1 > /dev/null
# the int8 rule's accuracy half: trained models, every test digit, int8 against PyTorch
for run in reference-default vgg48-bf16-e32-final/member-0 vgg48-bf16-e32-final/member-1 vgg48-bf16-e32-final/member-2; do
  echo "== $run"; $B/digitlab export benchmarks/out/$run --int8 --force
done | tee $D/export_int8.txt
for run in reference-e1 compact-e1 vgg48-bf16-e32-final/member-0; do
  tag=$(echo "$run" | tr / _)
  $B/python benchmarks/bench_inference.py benchmarks/out/$run | tee $D/bench_inference_$tag.txt
done
# the Keras peer, same session (its own venv; MNIST's raw IDX files from digitlab's cache)
[ -x /tmp/venv-keras/bin/python ] || { python3 -m venv /tmp/venv-keras; /tmp/venv-keras/bin/pip install -q tensorflow-cpu==2.21.0 scipy==1.17.1; }
rm -rf /tmp/peers && cp -r ../shared/peers /tmp/peers && mkdir -p $D/peers
(cd /tmp/peers && MNIST_DIR=/root/.cache/digitlab/mnist /tmp/venv-keras/bin/python keras_seed.py --epochs 3 \
   --out results_keras.json > keras.log 2>&1)
cp /tmp/peers/results_keras.json /tmp/peers/keras.log $D/peers/
# digitlab's reference CNN again right after the peer, so both sit in one stretch of host speed
$B/python benchmarks/bench_inference.py benchmarks/out/reference-e1 | tee $D/bench_inference_reference-e1_beside_keras.txt
