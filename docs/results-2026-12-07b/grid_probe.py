"""Milliseconds per call of PyTorch's F.affine_grid (align_corners=False) against digitlab.augment.affine_grid (the
same grid as broadcast arithmetic), alone and followed by the `grid_sample` that uses it, on the `fast` recipe's random
matrices, at batch 64 and 128, in alternating rounds of 500 calls, and the largest difference between the two grids.
From the repo root (2026-12-07, a 2-core AMD EPYC, Zen 3):

    python docs/results-2026-12-07b/grid_probe.py [--rounds 5]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from digitlab.augment import affine_grid, make_generator, random_affine_matrices
from digitlab.config import recipe

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=5)
args = parser.parse_args()

config = recipe("fast").augment
for batch in (64, 128):
    theta = random_affine_matrices(batch, config, make_generator(0, "cpu"), "cpu")
    images = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 255
    ways = {
        "F.affine_grid": lambda theta=theta, batch=batch: F.affine_grid(theta, [batch, 1, 28, 28], align_corners=False),
        "broadcast": lambda theta=theta: affine_grid(theta, 28, 28),
    }
    difference = (ways["F.affine_grid"]() - ways["broadcast"]()).abs().max().item()
    for name, grid in list(ways.items()):
        ways[f"{name} + grid_sample"] = lambda grid=grid, images=images: F.grid_sample(
            images, grid(), align_corners=False
        )
    times = {name: [] for name in ways}
    for r in range(args.rounds):
        for name in ways if r % 2 == 0 else reversed(ways):
            for _ in range(50):  # warm-up
                ways[name]()
            start = time.perf_counter()
            for _ in range(500):
                ways[name]()
            times[name].append((time.perf_counter() - start) * 1000 / 500)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"batch {batch}: largest difference {difference:.1e}; ms per call, median of {args.rounds} rounds (all)")
    for name, t in times.items():
        print(f"  {name:28s} {medians[name]:.3f}  ({' '.join(f'{x:.3f}' for x in t)})")
