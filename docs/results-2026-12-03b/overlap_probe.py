"""How much the members of an ensemble share their test errors: each member's wrong test digits, the digits all
of them get wrong, and the ensemble's. Run from the repository root:

    python docs/results-2026-12-03b/overlap_probe.py benchmarks/out/vgg32-bf16-e36-final
"""

import sys
from itertools import combinations
from pathlib import Path

import numpy as np

from digitlab.datasets import load_split
from digitlab.engines import TorchEngine

folder = Path(sys.argv[1])
images, labels = load_split("mnist", "test")
labels = np.asarray(labels)
members = sorted(p for p in folder.glob("member-*") if p.is_dir())
probs = [TorchEngine(m / "model.safetensors").predict_proba(images[:, None]) for m in members]
wrong = [set(np.flatnonzero(p.argmax(1) != labels)) for p in probs]
for m, w in zip(members, wrong):
    print(f"{m.name}: {len(w)} wrong")
for (a, wa), (b, wb) in combinations(zip(members, wrong), 2):
    print(f"{a.name} & {b.name}: {len(wa & wb)} wrong in both")
print(f"wrong in all {len(wrong)}: {len(set.intersection(*wrong))}; in any: {len(set.union(*wrong))}")
print(f"ensemble (probabilities averaged): {int((np.mean(probs, 0).argmax(1) != labels).sum())} wrong")
