"""The .npz the robust typed run trained on (PLAN.md beside it): MNIST's 60,000 training images, then the probe's
typed digits."""

import numpy as np

from digitlab.datasets import load_split

x, y = load_split("mnist", "train")
w = np.load("/tmp/probe/typed/with.npz")
ti, tl = w["images"][55000:], w["labels"][55000:]
assert len(ti) == 3330
np.savez("/tmp/probe/typed/mnist60k_typed.npz", images=np.concatenate([x, ti]), labels=np.concatenate([y, tl]))
np.savez("/tmp/probe/typed/typed_only.npz", images=ti, labels=tl)
print("ok")
