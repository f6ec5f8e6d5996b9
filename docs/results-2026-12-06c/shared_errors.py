"""The test digits that every deep final model gets wrong (2026-12-06): the six 3x3 (M3) and six 5x5 (M5) final
models of docs/results-2026-12-06b and -06c, their labels and the twelve-model committee's reading of each, as a
table and a picture (`shared_errors.png`). Run from the repository root:

    python docs/results-2026-12-06c/shared_errors.py
"""

from pathlib import Path

import numpy as np

from digitlab.datasets import load_split
from digitlab.engines import TorchEngine
from digitlab.figures import image_grid

FOLDERS = ["deep32-bf16-e14-final", "deep32-bf16-e14-final-s3", "deep32k5-bf16-e22-final", "deep32k5-bf16-e22-final-s3"]

images, labels = load_split("mnist", "test")
labels = np.asarray(labels)
members = [m for f in FOLDERS for m in sorted(Path("benchmarks/out", f).glob("member-*")) if m.is_dir()]
probabilities = np.stack([TorchEngine(m / "model.safetensors").predict_proba(images[:, None]) for m in members])
wrong_in_all = np.flatnonzero((probabilities.argmax(2) != labels).all(0))
committee = probabilities.mean(0)
print(f"{len(members)} models; {len(wrong_in_all)} test images wrong in every one of them")
print("index  label  committee reads  its probability  probability of the label")
captions = []
for i in wrong_in_all:
    read = int(committee[i].argmax())
    print(f"{i:5d}  {labels[i]:5d}  {read:15d}  {committee[i, read]:15.3f}  {committee[i, labels[i]]:24.3f}")
    captions.append(f"#{i}: {labels[i]} read {read}")
title = f"wrong in all {len(members)} deep final models: label, then the committee's reading"
png = image_grid(np.asarray(images)[wrong_in_all], captions, columns=5, title=title)
Path(__file__).with_name("shared_errors.png").write_bytes(png)
