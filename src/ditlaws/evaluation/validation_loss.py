"""Validation loss: the training objective on a fixed validation set, with a low-variance estimate.

Each validation sample gets K timesteps from the (stratified) training t-sampler and K noises, all drawn from a
generator seeded by (seed, sample id): the estimate is the same for any batch size or batch order. The caption is
kept (no caption drop) and the model runs in eval mode. The standard error is over samples (the K stratified
timesteps of one sample are not independent draws, the samples are).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import torch

from ditlaws.evaluation._draws import eval_mode, squared_errors, stream_draws
from ditlaws.evaluation.statistics import mean_and_sem, per_sample_mean
from ditlaws.flow import sample_t


def loss_in_bins(t: torch.Tensor, loss: torch.Tensor, n_bins: int) -> dict:
    """Mean loss in equal-width t-bins over [0, 1] (bins without draws report None)."""
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = torch.bucketize(t.double(), edges[1:-1], right=True)
    count = torch.bincount(index, minlength=n_bins)
    total = torch.bincount(index, weights=loss.double(), minlength=n_bins)
    mean = [None if c == 0 else float(s / c) for s, c in zip(total.tolist(), count.tolist())]
    return {"edges": edges.tolist(), "mean": mean, "count": count.tolist()}


def validation_loss(
    model,
    batches: Iterable[dict],
    *,
    timesteps_per_sample: int = 16,
    sampler: str = "logit_normal",
    loc: float = 0.0,
    scale: float = 1.0,
    seed: int = 0,
    n_bins: int = 10,
    max_samples: int | None = None,
    forward_batch_size: int = 256,
    device=None,
    progress: bool = False,
) -> dict:
    """Mean per-dimension flow loss over (sample, t, noise), its standard error, and the loss in t-bins.

    The paper uses 10,000 samples x 1,000 timesteps; ``max_samples`` and ``timesteps_per_sample`` set both.
    """
    draw_t = partial(_draw_t, sampler=sampler, loc=loc, scale=scale)
    chunks = stream_draws(
        batches, draws_per_sample=timesteps_per_sample, draw_t=draw_t, seed=seed, stream="val_loss",
        chunk_rows=forward_batch_size, max_samples=max_samples, progress=progress, desc="val loss",
    )
    with eval_mode(model):
        rows = squared_errors(model, chunks, device=device)
    loss = rows["sq_err"] / rows["dim"]
    mean, sem = mean_and_sem(per_sample_mean(rows["sample"], loss))
    return {
        "mean": mean,
        "sem": sem,
        "n_samples": int(rows["sample"].max()) + 1,
        "timesteps_per_sample": timesteps_per_sample,
        "t_sampler": {"name": sampler, "loc": loc, "scale": scale, "stratified": True},
        "seed": seed,
        "dim": rows["dim"],
        "bins": loss_in_bins(rows["t"], loss, n_bins),
    }


def _draw_t(k: int, generator: torch.Generator, *, sampler: str, loc: float, scale: float) -> torch.Tensor:
    return sample_t(k, sampler, loc=loc, scale=scale, stratified=True, generator=generator)
