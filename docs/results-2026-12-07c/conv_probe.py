"""The reference CNN's four convolutions at batch 64, channels-last fp32, one kernel at a time: forward, the input's
gradient (backward-data) and the weights' gradient (backward-weight) as PyTorch's training step calls them
(aten.convolution_backward with one output each), and the input's gradient written as a forward convolution of the
padded output gradient with the flipped, transposed weights (the same numbers). GFLOP/s of each, medians of
interleaved rounds. From the repo root (2026-12-07, third session):

    python docs/results-2026-12-07c/conv_probe.py [--rounds 7]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=7)
args = parser.parse_args()
torch.manual_seed(0)
N = 64
LAYERS = [(1, 32, 28), (32, 32, 26), (32, 64, 12), (64, 64, 10)]  # (in channels, out channels, input side), 3x3
cl = torch.channels_last


def timed(fn, repeats: int = 20) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def kernels(c_in, c_out, side):
    x = torch.randn(N, c_in, side, side).contiguous(memory_format=cl)
    w = torch.randn(c_out, c_in, 3, 3).contiguous(memory_format=cl) * 0.1
    g = torch.randn(N, c_out, side - 2, side - 2).contiguous(memory_format=cl)
    w_t = w.flip(2, 3).transpose(0, 1).contiguous(memory_format=cl)  # (c_in, c_out, 3, 3)

    def backward(mask):
        return lambda: torch.ops.aten.convolution_backward(
            g, x, w, [c_out], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, mask
        )

    return {
        "forward": lambda: F.conv2d(x, w),
        "backward-data": backward([True, False, False]),
        "backward-weight": backward([False, True, True]),
        "data as forward": lambda: F.conv2d(F.pad(g, (2, 2, 2, 2)), w_t),
    }, (x, w, g, w_t)


def check(tensors):
    x, w, g, w_t = tensors
    ours = F.conv2d(F.pad(g, (2, 2, 2, 2)), w_t)
    theirs = torch.ops.aten.convolution_backward(
        g, x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, False, False]
    )[0]
    return (ours - theirs).abs().max().item() / theirs.abs().max().item()


cases = {layer: kernels(*layer) for layer in LAYERS}
for layer, (_, tensors) in cases.items():
    print(
        f"{layer}: data-as-forward against backward-data, largest difference relative to the largest value "
        f"{check(tensors):.1e}"
    )
times = {(layer, name): [] for layer in LAYERS for name in cases[layer][0]}
for _ in range(args.rounds):
    for layer, (fns, _) in cases.items():
        for name, fn in fns.items():
            times[(layer, name)].append(timed(fn))
print("| conv (in, out, side) | kernel | ms | GFLOP/s |\n|---|---|---|---|")
total = {}
for (layer, name), ts in times.items():
    c_in, c_out, side = layer
    flop = 2 * N * (side - 2) ** 2 * c_out * c_in * 9
    ms = statistics.median(ts) * 1e3
    total[name] = total.get(name, 0) + ms
    print(f"| {layer} | {name} | {ms:.3f} | {flop / ms / 1e6:.0f} |")
print("totals (ms, batch 64): " + ", ".join(f"{k} {v:.2f}" for k, v in total.items()))
