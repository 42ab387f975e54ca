"""What each metric will cost, printed before any of them runs.

Every metric is a count of network evaluations: loss and VLB one forward pass per (sample, t); the exact NLL one
forward pass per ODE step plus a vector-Jacobian product (~2 forward passes) per Hutchinson probe, or per input
dimension with the exact divergence; generation (shared by FID, accuracy, CLIP score and the sample grids) one per
sampling step and image, twice with classifier-free guidance. One forward pass of one batch is timed on the
evaluation device, so the estimate is in seconds on this machine (within ~2x: batch-size and memory effects).
"""

from __future__ import annotations

import time

import torch

GENERATION = ("fid", "accuracy", "clip", "samples")
VJP_COST = 2.0  # a vector-Jacobian product costs about two forward passes


def forward_passes(cfg, split_size: int | None, input_dims: int) -> dict[str, float | None]:
    """Forward-pass equivalents per sample-level metric for one split (generation: all generation metrics)."""
    sizes = [x for x in (cfg.max_samples, split_size) if x is not None]
    n_val = min(sizes) if sizes else None  # None: the whole split, of a size unknown before reading it
    passes = {}
    for metric in cfg.metrics:
        if metric == "loss":
            passes["loss"] = None if n_val is None else n_val * cfg.loss_timesteps
        elif metric == "vlb":
            passes["vlb"] = None if n_val is None else n_val * cfg.vlb_timesteps
        elif metric == "nll":
            per_step = 1 + VJP_COST * (cfg.nll_probes if cfg.nll_divergence == "hutchinson" else input_dims)
            steps = cfg.nll_steps if cfg.nll_method == "euler" else 100  # dopri5: adaptive, ~100 evaluations
            n = cfg.nll_samples if split_size is None else min(cfg.nll_samples, split_size)
            passes["nll"] = n * steps * per_step
    asked = {"fid": cfg.fid_samples, "accuracy": cfg.accuracy_samples, "clip": cfg.clip_samples,
             "samples": cfg.grid_samples}
    images = max((asked[m] for m in cfg.metrics if m in GENERATION), default=0)
    if split_size is not None:
        images = min(images, split_size)
    if images:
        passes["generation"] = images * cfg.sample_steps * (1 if cfg.guidance_scale == 1.0 else 2)
    return passes


@torch.no_grad()
def seconds_per_forward(model, batch: dict, device) -> float:
    """Seconds of one forward pass of one sample, from a timed batch (after one warm-up pass)."""
    latent = batch["latent"].to(device)
    states = batch["text_states"].to(device)
    mask = batch.get("text_mask")
    pooled = batch.get("pooled")
    kwargs = {"text_mask": None if mask is None else mask.to(device),
              "pooled": None if pooled is None else pooled.to(device)}
    t = torch.full((latent.shape[0],), 0.5, device=device)
    model(latent, t, states, **kwargs)
    started = time.perf_counter()
    model(latent, t, states, **kwargs)
    return (time.perf_counter() - started) / latent.shape[0]


def describe(passes: dict[str, float | None], per_forward: float, splits: int) -> list[str]:
    """One line per metric: forward passes and estimated seconds for all splits."""
    lines = []
    for metric, n in passes.items():
        if n is None:
            lines.append(f"  {metric}: the whole split (size unknown before reading it; --max-samples caps it)")
            continue
        seconds = n * per_forward * splits
        shown = f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
        lines.append(f"  {metric}: {n * splits:,.0f} forward passes, ~{shown}")
    return lines
