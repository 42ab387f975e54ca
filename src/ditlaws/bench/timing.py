"""Timing helpers: the median of repeated calls after a warm-up, and the matmul peaks the step is measured against."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def timed_calls(fn: Callable[[], object], repeats: int, cpu_times: list | None = None) -> list[float]:
    """Seconds of each of `repeats` calls of `fn()`; with `cpu_times`, also appends each call's CPU seconds of this
    process (all its threads), which other processes' load on shared cores changes far less than the wall time."""
    times = []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu)
    return times


def summary(times: list[float]) -> dict:
    """{"median_s", "min_s", "max_s", "repeats"} of measured call times."""
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times)}


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 3) -> dict:
    """`summary` of `fn()` over `repeats` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    return summary(timed_calls(fn, repeats))


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> dict:
    """FLOP/s of an n×n by n×n `torch.mm` in `dtype` (2·n³ FLOPs per product): the practical peak of this CPU."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    timing = median_seconds(lambda: torch.mm(a, b), repeats)
    return {"dtype": str(dtype).removeprefix("torch."), "n": n, **timing, "flops_per_s": 2 * n**3 / timing["median_s"]}
