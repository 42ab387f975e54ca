"""Per-sample statistics and units shared by the estimators (validation loss, VLB, likelihood).

Each estimator produces rows (one per draw) tagged with their sample's running index; a sample's estimate is the
mean of its rows, and the reported standard error is over samples (a sample's draws are not independent of each
other, the samples are). Likelihoods are reported per dimension in nats and bits; for pixels in [-1, 1] that come
from 8-bit images, the density on the 0..255 scale is smaller by a factor 127.5 per dimension, which gives the
usual dequantised bits/dim (nats/dim + ln 127.5) / ln 2.
"""

from __future__ import annotations

import math

import torch

LOG_127_5 = math.log(127.5)  # [-1, 1] pixels -> the 0..255 scale, per dimension


def per_sample_mean(sample: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` per sample index (``sample``: long [R], 0..n-1), float64 [n]."""
    n = int(sample.max()) + 1
    return torch.bincount(sample, weights=values.double(), minlength=n) / torch.bincount(sample, minlength=n)


def mean_and_sem(values: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN for a single value)."""
    n = values.numel()
    sem = float(values.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    return float(values.mean()), sem


def bits(nats: float) -> float:
    return nats / math.log(2)


def bits_per_dim_8bit(nats_per_dim: float) -> float:
    """Bits/dim of 8-bit images from nats/dim of their [-1, 1] pixels."""
    return bits(nats_per_dim + LOG_127_5)
