"""Timing helpers: the median of repeated calls after a warm-up, and the matmul peaks the step is measured against."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 3) -> dict:
    """{"median_s", "min_s", "max_s", "repeats"} of `fn()` over `repeats` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": repeats}


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> dict:
    """FLOP/s of an n×n by n×n `torch.mm` in `dtype` (2·n³ FLOPs per product): the practical peak of this CPU."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    timing = median_seconds(lambda: torch.mm(a, b), repeats)
    return {"dtype": str(dtype).removeprefix("torch."), "n": n, **timing, "flops_per_s": 2 * n**3 / timing["median_s"]}
