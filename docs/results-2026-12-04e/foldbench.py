"""ONNX Runtime at batch 64 on the 10,000 MNIST test images: two exports of one model (here the compact CNN before
and after the BatchNorm back-fold), in interleaved rounds with digitlab's own session options; medians and ratio.

    python docs/results-2026-12-04e/foldbench.py before=/tmp/before.onnx after=/tmp/after.onnx
"""

import statistics
import sys
import time

import numpy as np

from digitlab.datasets import load_split
from digitlab.export import onnx_session, run_onnx

images = load_split("mnist", "test")[0][:, None].astype(np.float32)
paths = dict(arg.split("=") for arg in sys.argv[1:])
names = list(paths)
sessions = {name: onnx_session(path) for name, path in paths.items()}
probabilities = {name: run_onnx(session, images, 2048) for name, session in sessions.items()}
first, second = (probabilities[name] for name in names[:2])
print(f"largest probability difference {float(np.abs(first - second).max()):.2e}; same prediction on", end=" ")
print(f"{int((first.argmax(1) == second.argmax(1)).sum()):,} of {len(images):,} images")
batches = [images[i : i + 64] for i in range(0, len(images), 64)]
rates = {name: [] for name in names}
for round_ in range(7):
    for name in names if round_ % 2 == 0 else names[::-1]:
        session = sessions[name]
        feed = session.get_inputs()[0].name
        start = time.perf_counter()
        for batch in batches:
            session.run(None, {feed: batch})
        rates[name].append(len(images) / (time.perf_counter() - start))
for name in names:
    rounds = ", ".join(f"{r:,.0f}" for r in rates[name])
    print(f"{name}: median {statistics.median(rates[name]):,.0f} images/s; rounds {rounds}")
print(f"ratio {names[1]} / {names[0]}: {statistics.median(rates[names[1]]) / statistics.median(rates[names[0]]):.3f}")
