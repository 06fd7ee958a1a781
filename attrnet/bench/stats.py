"""Timing loops and latency statistics (no torch)."""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

__all__ = ["percentile", "pipeline_ceiling", "pipeline_efficiency", "throughput", "time_calls"]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def time_calls(fn: Callable[[], object], iters: int, warmup: int = 1,
               sync: Callable[[], None] | None = None,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds taken by each of `iters` calls of `fn`, after `warmup` untimed calls.

    `sync` (e.g. ``torch.cuda.synchronize``) runs after every call so that
    asynchronous devices are timed to completion.
    """
    if iters < 1:
        raise ValueError("iters must be at least 1")
    for _ in range(max(0, warmup)):
        fn()
        if sync is not None:
            sync()
    times = []
    for _ in range(iters):
        t0 = clock()
        fn()
        if sync is not None:
            sync()
        times.append(clock() - t0)
    return times


def throughput(images: int, seconds: float) -> float:
    """Images per second (0 when no time passed is impossible: raises)."""
    if seconds <= 0:
        raise ValueError("throughput over a non-positive time")
    return images / seconds


def pipeline_ceiling(decode_per_s: float, model_per_s: float) -> float:
    """E = 1/(1/D + 1/M): the end-to-end rate when decode and model share the same cores (DESIGN §8)."""
    return 1.0 / (1.0 / decode_per_s + 1.0 / model_per_s)


def pipeline_efficiency(e2e_per_s: float, decode_per_s: float, model_per_s: float) -> float:
    """End-to-end rate over the shared-cores ceiling E."""
    return e2e_per_s / pipeline_ceiling(decode_per_s, model_per_s)
