"""The other-writers set of `digitlab robustness` (robustness.other_writers: UCI's 1,797 test digits of 13 writers,
8x8, enlarged as ink on paper and through the server's preprocessing) on the models on disk, without the rest of
the suite: the same function the command calls."""

import sys

from digitlab.engines import load_engine
from digitlab.robustness import other_writers

for run in sys.argv[1:]:
    result = other_writers(load_engine(run))
    print(f"{run}: {result['accuracy']:.2%}, missed per digit 0-9: {result['missed_per_digit']}")
