"""E5 of PLAN.md for information: `digitlab ensemble --from` refuses the five final models together, because the
two typed ones name another data source (the probe's .npz of MNIST + typed digits, not `mnist` with
--typed-digits). Their MNIST test probabilities averaged here, without TTA, as `ensemble` averages them."""

import numpy as np

from digitlab.config import DataConfig
from digitlab.data import load_test
from digitlab.engines import load_engine

runs = [f"benchmarks/out/robust-final-s{s}" for s in (0, 1, 2)]
runs += [f"benchmarks/out/robust-typed-final-s{s}" for s in (0, 1)]
test = load_test(DataConfig())
images, labels = test.images.numpy().astype(np.float32), test.labels.numpy()
probabilities = [load_engine(run).predict_proba(images) for run in runs]
singles = [float((p.argmax(1) == labels).mean()) for p in probabilities]
for run, acc in zip(runs, singles):
    print(f"{run}: {acc:.2%}")
for name, members in (("E3", probabilities[:3]), ("E5", probabilities)):
    acc = float((np.mean(members, 0).argmax(1) == labels).mean())
    mean = np.mean(singles[: len(members)])
    print(f"{name}: {acc:.2%}, members' mean {mean:.3%}, gain {100 * (acc - mean):+.3f} points")
