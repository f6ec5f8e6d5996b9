"""Keep freed memory in the process: glibc malloc settings that stop a CPU training step from page-faulting.

A training step allocates and frees the same large tensors every time (the compact CNN's first feature map at batch
128 is 4.7 MB, and max-pooling's backward zeroes a gradient that size). glibc's malloc serves blocks above its mmap
threshold with fresh mappings and gives freed memory at the top of the heap back to the system above its trim
threshold, so each step faults its big tensors in again, page by page: on a 2-core AMD EPYC (Zen 3, 2026-12-07)
zeroing one such gradient took 0.26 ms where it should take a tenth of that, and the `fast` recipe's step took
30-35 ms instead of 22-27 (docs/results-2026-12-07/step_probe.py). Raising both thresholds keeps the memory mapped
and reused; nothing computed changes. (Setting only one turns off glibc's adaptive threshold and is worse.)

`keep_freed_memory()` runs at the start of every `digitlab` command, and in the benchmarks that time digitlab's step
in-process. It does nothing off glibc (macOS, Windows, musl), or when the user chose for themselves: one of glibc's
MALLOC_*_ environment variables set, or another allocator preloaded (LD_PRELOAD, e.g. jemalloc or tcmalloc).
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 256 << 20  # bytes of free memory at the heap's top kept before returning any to the system
MMAP_THRESHOLD = 32 << 20  # blocks below this come from the heap: glibc's largest allowed value on 64-bit Linux
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory() -> str:
    """Raise glibc malloc's trim and mmap thresholds for this process; returns what was done, in words."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "left alone (not glibc)"
    chosen = [name for name in USER_SETTINGS if name in os.environ]
    if os.environ.get("LD_PRELOAD"):
        chosen.append("LD_PRELOAD")
    if chosen:
        return f"left alone ({', '.join(chosen)} set)"
    mallopt = ctypes.CDLL(None).mallopt
    if not (mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)):
        return "left alone (mallopt refused)"
    return f"trim threshold {TRIM_THRESHOLD >> 20} MiB, mmap threshold {MMAP_THRESHOLD >> 20} MiB"
