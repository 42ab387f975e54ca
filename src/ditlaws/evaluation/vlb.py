"""The variational lower bound (VLB) of a rectified-flow model, in Kingma et al. (2021)'s continuous-time form.

With x_t = (1 - t) x0 + t eps, SNR(t) = (1 - t)^2 / t^2 and the model's data estimate x0_hat = x_t - t v_hat:

    x0 - x0_hat = x0 - (1 - t) x0 - t eps + t v_hat = t (v_hat - (eps - x0)) = t (v_hat - v)
    SNR'(t) = d/dt (1 - t)^2 t^-2 = -2 (1 - t) t^-2 - 2 (1 - t)^2 t^-3 = -2 (1 - t) / t^3
    -1/2 SNR'(t) ||x0 - x0_hat||^2 = (1 - t) / t^3 * t^2 ||v_hat - v||^2 = (1 - t) / t * ||v_hat - v||^2

so the diffusion term of the bound is the flow loss (summed over dims) weighted by ``flow.vlb_weight``. The
bound on -log p(x0) (nats; the continuous-time limit of the reverse SDE, as in VDM) is

    reconstruction(t_min) + integral_{t_min}^{t_max} (1 - t) / t * E_eps ||v_hat - v||^2 dt + prior(t_max)

- reconstruction: -log N(x0; x_tmin / (1 - t_min), s^2 I), s = t_min / (1 - t_min), whose expectation over eps is
  D/2 (log(2 pi s^2) + 1), the same for every x0. It cancels the D log(1/t_min) that the integral picks up near
  t = 0 (there the remaining error is eps's, which no model can predict), so the bound is finite and t_min only
  has to be small.
- prior: KL(N((1 - t_max) x0, t_max^2 I) || N(0, I)) (0 at t_max = 1).

The t-integral is estimated by importance sampling, K stratified t per sample, each weighted by 1 / p(t):
``logsnr_uniform`` (default) draws log SNR uniformly on [log SNR(t_max), log SNR(t_min)], for which
f(t) / p(t) = (1 - t)^2 ||.||^2 (log-SNR range) / 2 stays bounded; ``logit_normal`` (the training sampler) and
``uniform`` are unbiased too but have heavy-tailed weights near t = 0.

In latent space the VAE's encoder/decoder terms are constant for a fixed VAE and are omitted: the number is the
bound on the latent density.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import torch

from ditlaws.errors import UserError
from ditlaws.evaluation._draws import eval_mode, squared_errors, stream_draws
from ditlaws.evaluation.statistics import bits, bits_per_dim_8bit, mean_and_sem, per_sample_mean
from ditlaws.flow import logit_normal_pdf, sample_t, vlb_weight

PROPOSALS = ("logsnr_uniform", "logit_normal", "uniform")


def _log_snr(t: float) -> float:
    return 2 * (math.log1p(-t) - math.log(t))


def draw_proposal(k: int, generator, *, proposal: str, t_min: float, t_max: float, loc: float, scale: float):
    """K stratified times from the proposal."""
    if proposal == "logsnr_uniform":
        u = sample_t(k, "uniform", stratified=True, generator=generator).double()
        lam = _log_snr(t_max) + u * (_log_snr(t_min) - _log_snr(t_max))
        return torch.sigmoid(-lam / 2)
    return sample_t(k, proposal, loc=loc, scale=scale, stratified=True, generator=generator).double()


def proposal_pdf(t: torch.Tensor, *, proposal: str, t_min: float, t_max: float, loc: float, scale: float):
    t = t.double()
    if proposal == "logsnr_uniform":
        return 2 / (t * (1 - t) * (_log_snr(t_min) - _log_snr(t_max)))
    if proposal == "logit_normal":
        return logit_normal_pdf(t, loc, scale)
    return torch.ones_like(t)


def noise_error_scale(t: torch.Tensor) -> torch.Tensor:
    """c(t) = (1 - t)^2 / ((1 - t)^2 + t^2)^2: E||v_hat - v||^2 per dim of the optimal model for unit-variance data.

    Used as a control variate: w(t) c(t) (||eps||^2 - D) has mean zero for any t (eps is drawn independently of t),
    and subtracting it removes most of the chi-square noise of ||v_hat - v||^2 where eps is unpredictable (t -> 0).
    """
    return (1 - t) ** 2 / ((1 - t) ** 2 + t**2) ** 2


def reconstruction_nats(dim: int, t_min: float) -> float:
    """E_eps[-log N(x0; x_tmin / (1 - t_min), s^2 I)] = D/2 (log(2 pi s^2) + 1), s = t_min / (1 - t_min)."""
    s = t_min / (1 - t_min)
    return 0.5 * dim * (math.log(2 * math.pi * s**2) + 1)


def prior_nats(x0_sq: torch.Tensor, dim: int, t_max: float) -> torch.Tensor:
    """KL(N((1 - t_max) x0, t_max^2 I) || N(0, I)) per sample, given sum(x0^2)."""
    return 0.5 * ((1 - t_max) ** 2 * x0_sq + dim * (t_max**2 - 1 - 2 * math.log(t_max)))


def vlb(
    model,
    batches: Iterable[dict],
    *,
    timesteps_per_sample: int = 16,
    proposal: str = "logsnr_uniform",
    loc: float = 0.0,
    scale: float = 1.0,
    t_min: float = 1e-4,
    t_max: float = 1 - 1e-4,
    seed: int = 0,
    max_samples: int | None = None,
    forward_batch_size: int = 256,
    pixel_8bit: bool = False,
    control_variate: bool = True,
    device=None,
    progress: bool = False,
) -> dict:
    """The VLB of -log p(x0) in nats/dim and bits/dim, averaged over samples, with its standard error."""
    if proposal not in PROPOSALS:
        raise UserError(f"VLB t proposal {proposal!r} is not known; valid: {', '.join(PROPOSALS)}")
    if not 0 < t_min < t_max <= 1:
        raise UserError(f"VLB needs 0 < t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    spec = dict(proposal=proposal, t_min=t_min, t_max=t_max, loc=loc, scale=scale)
    chunks = stream_draws(
        batches, draws_per_sample=timesteps_per_sample, draw_t=partial(draw_proposal, **spec), seed=seed,
        stream="vlb", chunk_rows=forward_batch_size, max_samples=max_samples, progress=progress, desc="vlb",
    )
    with eval_mode(model):
        rows = squared_errors(model, chunks, device=device)
    t, dim = rows["t"], rows["dim"]
    inside = (t >= t_min) & (t <= t_max)
    weight = torch.where(inside, vlb_weight(t) / proposal_pdf(t, **spec), 0.0)
    integrand = weight * rows["sq_err"]
    if control_variate:
        integrand = integrand - weight * noise_error_scale(t) * (rows["noise_sq"] - dim)
    diffusion = per_sample_mean(rows["sample"], integrand)
    edges = sorted({t_min, *(e for e in (1e-3, 1e-2, 0.1, 0.5, 0.9) if t_min < e < t_max), t_max})
    index = torch.bucketize(t, torch.tensor(edges[1:-1], dtype=t.dtype), right=True)
    per_bin = torch.bincount(index, weights=integrand, minlength=len(edges) - 1) / (len(integrand) * dim)
    prior = per_sample_mean(rows["sample"], prior_nats(rows["x0_sq"], dim, t_max))
    recon = reconstruction_nats(dim, t_min)
    per_sample = (diffusion + prior + recon) / dim
    total, sem = mean_and_sem(per_sample)
    out = {
        "nats_per_dim": total,
        "sem_nats_per_dim": sem,
        "bits_per_dim": bits(total),
        "terms_nats_per_dim": {
            "diffusion": float(diffusion.mean()) / dim,
            "reconstruction": recon / dim,
            "prior": float(prior.mean()) / dim,
        },
        # where the diffusion term comes from: its share per t-range (sums to the diffusion term)
        "diffusion_by_t_nats_per_dim": {"edges": edges, "value": per_bin.tolist()},
        "per_sample_nats_per_dim": per_sample.tolist(),
        "n_samples": diffusion.numel(),
        "timesteps_per_sample": timesteps_per_sample,
        "dim": dim,
        "seed": seed,
        **spec,
        "note": "bound on -log p of the model's input space (latents: VAE terms are constant and omitted)",
    }
    if pixel_8bit:
        out["bits_per_dim_8bit"] = bits_per_dim_8bit(total)
    return out

