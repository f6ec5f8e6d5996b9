"""Steps 2-4's table from the logs (PLAN.md): `best` at 48 epochs, without weight decay and with an EMA, paired with
`best` (dropout 0.25) — this session's seed 0 run, equal epoch for epoch to the eighth session's, and that session's
seeds 1 and 2.

python docs/results-2026-12-06i/summarise.py
"""

import importlib.util
from pathlib import Path

HERE = Path(__file__).parent
EIGHTH = HERE.parent / "results-2026-12-06h"
spec = importlib.util.spec_from_file_location("summarise_06h", EIGHTH / "summarise.py")
summarise_06h = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarise_06h)

baseline = [summarise_06h.read(HERE / "best-s0.log")] + [
    summarise_06h.read(EIGHTH / f"best-do25-s{s}.log") for s in (1, 2)
]
summarise_06h.table(
    "`best` (dropout 0.25, 24 epochs)",
    baseline,
    [("48 epochs", "e48"), ("weight decay 0", "wd0"), ("EMA 0.999", "ema")],
    HERE,
)
