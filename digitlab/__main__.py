"""`python -m digitlab ...` — the same command line as `digitlab ...`, and what `torchrun -m digitlab` starts."""

import sys

from .cli import main

sys.exit(main())
