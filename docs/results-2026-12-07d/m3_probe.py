"""The deep CNN (M3: `--recipe best --arch deep --width 32 --dropout 0`, batch 128, fp32) on this CPU: images/s and
minor page faults per step over 20 steps after 3 warm-up steps, with glibc's defaults or, with `keep`,
digitlab.state.keep_freed_memory first. `python docs/results-2026-12-07d/m3_probe.py [keep]` (the step loop and the
timed block are faults.py's; m3_probe.txt was recorded with this script's first form, which held copies of them)."""

import dataclasses
import sys

from faults import step_loop, timed_block

from digitlab.config import recipe
from digitlab.state import keep_freed_memory

if sys.argv[1:] == ["keep"]:
    keep_freed_memory()
best = recipe("best")
config = dataclasses.replace(best, model=dataclasses.replace(best.model, arch="deep", width=32, dropout=0.0))
steps = step_loop(config)
steps(3, 0)
rate, faults = timed_block(steps, 20, 3, config.train.batch_size)
print(f"{sys.argv[1:] or ['default']}: {rate:,.0f} images/s, {faults:,.0f} minor faults per step")
