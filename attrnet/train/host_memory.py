"""glibc malloc settings for training on the CPU.

By default glibc serves every block over its mmap threshold (at most 32 MiB)
with a fresh `mmap` and unmaps it on free, and trims freed heap memory back to
the OS. A training step allocates and frees the same large activation and
gradient tensors every step, so each step pays the page faults of touching
that memory anew: on a 2-core machine ReLU backward, max-pooling and
BatchNorm over a 33 MB activation ran at a few GB/s. `keep_freed_memory`
raises both thresholds so freed blocks are reused: cross-stitch training
(tiny, K=8, batch 16) went from 34.0 to 54.5 images/s, at a peak RSS of
1,128 instead of 995 MiB, since the process keeps memory near its peak
instead of returning it between steps (the side-by-side rows of
benchmarks/RESULTS.md). PyTorch's CPU tuning guide reaches the same end by
preloading jemalloc or tcmalloc.
"""
from __future__ import annotations

import ctypes
import sys

__all__ = ["KEEP_BYTES", "keep_freed_memory", "M_MMAP_THRESHOLD", "M_TRIM_THRESHOLD"]

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the reusable heap


def keep_freed_memory(limit: int = KEEP_BYTES) -> bool:
    """Make glibc keep freed blocks up to `limit` bytes for reuse. True when applied (Linux, glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    limit = min(int(limit), 2**31 - 1)
    # musl and other libcs without these options return 0
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))
