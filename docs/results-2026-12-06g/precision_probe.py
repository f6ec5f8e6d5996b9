"""What `--precision auto` decides on this CPU for each recipe's model: `precision.bf16_speedup` (the probe a run
makes, at the recipe's batch size, 2 threads), three times per model, fresh each time (no cache), with the choice
by the 1.25x margin.

    .venv/bin/python docs/results-2026-12-06g/precision_probe.py
"""

import torch

from digitlab.config import RECIPES, recipe
from digitlab.models import build_model
from digitlab.precision import BF16_MARGIN, bf16_speedup, this_cpu

torch.set_num_threads(2)
print(f"CPU: {this_cpu()[0]}; bf16 instructions: {this_cpu()[1]}; torch {torch.__version__}")
print(f"{'recipe':<10}{'model':<22}{'batch':>6}   bf16 / fp32, three probes   choice")
for name in RECIPES:
    config = recipe(name)
    model = build_model(config.model).to(memory_format=torch.channels_last)
    ratios = [bf16_speedup(model, config.train.batch_size, torch.device("cpu")) for _ in range(3)]
    choices = {"bf16" if r >= BF16_MARGIN else "fp32" for r in ratios}
    what = f"{config.model.arch}, width {config.model.width}"
    print(f"{name:<10}{what:<22}{config.train.batch_size:>6}   " + " / ".join(f"{r:.2f}x" for r in ratios)
          + f"   {'/'.join(sorted(choices))}", flush=True)  # fmt: skip
