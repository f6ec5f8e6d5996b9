"""Probe (2026-12-03): forward + backward time of the 2x2 max-pool on channels-last tensors, PyTorch's own against a
pooling with its own backward (the forward's saved indices and max_unpool2d); both must give the same gradients.
The shapes are the compact CNN's two pools at batch 128 and the reference CNN's at batch 64.

    .venv/bin/python docs/results-2026-12-03/pool_probe.py
"""

import time

import torch
import torch.nn.functional as F


class IndexedMaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y, indices = F.max_pool2d(x, 2, return_indices=True)
        ctx.save_for_backward(indices)
        ctx.size = x.shape[-2:]
        return y

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved_tensors
        return F.max_unpool2d(grad, indices, 2, output_size=ctx.size)


def milliseconds(pool, x, grad, reps=30):
    """Mean time of forward + backward on a fresh leaf (no gradient accumulation), after 5 warm-up rounds."""
    for _ in range(5):
        pool(x.detach().requires_grad_(True)).backward(grad)
    start = time.perf_counter()
    for _ in range(reps):
        pool(x.detach().requires_grad_(True)).backward(grad)
    return (time.perf_counter() - start) / reps * 1000


torch.manual_seed(0)
for shape in ((128, 16, 24, 24), (128, 32, 10, 10), (64, 32, 28, 28), (64, 64, 14, 14)):
    x = torch.randn(*shape).contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(F.max_pool2d(x, 2))
    own = milliseconds(lambda t: F.max_pool2d(t, 2), x, grad)
    indexed = milliseconds(IndexedMaxPool.apply, x, grad)
    a, b = x.detach().requires_grad_(True), x.detach().requires_grad_(True)
    F.max_pool2d(a, 2).backward(grad)
    IndexedMaxPool.apply(b).backward(grad)
    same = torch.equal(a.grad, b.grad)
    print(shape, f"max_pool2d {own:.3f} ms, indices+unpool {indexed:.3f} ms, same grad {same}")
