"""What each committee member sees: the first ten MNIST test digits as written and at ink widths 10-20 (the layer
`models.InkWidth` that `--ink-width` puts in front of a model). Run from the repository root:

    python docs/results-2026-12-06d/ink_widths.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from digitlab.data import load_source  # noqa: E402
from digitlab.models import InkWidth  # noqa: E402

digits = load_source("mnist", "test").images[:10].float().reshape(-1, 1, 28, 28)
widths = [0, 10, 12, 14, 16, 18, 20]
fig, axes = plt.subplots(len(widths), len(digits), figsize=(len(digits) * 0.9, len(widths) * 0.95))
for row, width in zip(axes, widths):
    with torch.no_grad():
        seen = InkWidth(width)(digits) if width else digits
    for ax, image in zip(row, seen):
        ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel("as written" if width == 0 else f"{width} px", rotation=0, ha="right", va="center", fontsize=9)
fig.suptitle("The first ten MNIST test digits at each member's ink width", fontsize=10)
fig.tight_layout()
out = Path(__file__).with_name("ink_widths.png")
fig.savefig(out, dpi=100)
print(f"wrote {out}")
