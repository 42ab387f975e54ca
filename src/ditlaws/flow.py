"""Rectified flow, the whole method in a page.

Time runs from data to noise: t = 0 is data, t = 1 is noise (diffusers' sigma).

    x_t = (1 - t) * x0 + t * eps            eps ~ N(0, I)
    v   = d x_t / dt = eps - x0             the network predicts v from (x_t, t, text)
    loss = || v_hat(x_t, t) - v ||^2        mean over C, H, W; t ~ logit-normal

The signal-to-noise ratio is SNR(t) = (1 - t)^2 / t^2, and the continuous-time variational bound
weights the same squared error by (1 - t) / t (see ``vlb_weight`` and ``ditlaws.evaluation.vlb``).
The probability-flow ODE dx/dt = v(x, t) carries data to noise; its likelihood lives in
``ditlaws.evaluation.likelihood``.
"""

from __future__ import annotations

import math

import torch

from ditlaws.errors import UserError

SAMPLERS = ("logit_normal", "uniform")

# Where 1/t or 1/(1-t) appear (VLB weights, inverse CDFs), t is kept inside [T_CLAMP, 1 - T_CLAMP] so
# the weights stay finite; the probability mass cut off is below 1e-5 for either sampler.
T_CLAMP = 1e-5


def _broadcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


def sample_t(
    n: int,
    sampler: str = "logit_normal",
    loc: float = 0.0,
    scale: float = 1.0,
    stratified: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw n training times in (0, 1).

    ``logit_normal``: t = sigmoid(z), z ~ N(loc, scale^2) (SD3's "lognorm"); ``uniform``: t ~ U(0, 1).
    ``stratified``: one draw per quantile bin, u_i = (i + U_i) / n mapped through the inverse CDF
    (for logit-normal sigmoid(loc + scale * Phi^-1(u_i))), then shuffled with the same generator, which
    lowers the variance of averages over t. Random numbers are drawn on the generator's device (CPU
    by default) and then moved, so a seed gives the same t everywhere.
    """
    if sampler not in SAMPLERS:
        raise UserError(f"t sampler {sampler!r} is not known; valid: {', '.join(SAMPLERS)}")
    if scale <= 0:
        raise UserError(f"t sampler scale must be > 0, got {scale}")
    gen_device = generator.device if generator is not None else "cpu"
    if stratified:
        u = (torch.arange(n, device=gen_device) + torch.rand(n, generator=generator, device=gen_device)) / n
        u = u[torch.randperm(n, generator=generator, device=gen_device)]
        if sampler == "uniform":
            t = u
        else:
            u = u.clamp(T_CLAMP, 1 - T_CLAMP)
            t = torch.sigmoid(loc + scale * math.sqrt(2.0) * torch.erfinv(2 * u - 1))
    elif sampler == "uniform":
        t = torch.rand(n, generator=generator, device=gen_device)
    else:
        t = torch.sigmoid(loc + scale * torch.randn(n, generator=generator, device=gen_device))
    return t.to(device) if device is not None else t


def logit_normal_pdf(t: torch.Tensor, loc: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """Density of t = sigmoid(N(loc, scale^2)): N(logit t; loc, scale) / (t (1 - t))."""
    t = t.double().clamp(T_CLAMP, 1 - T_CLAMP)
    z = (torch.log(t) - torch.log1p(-t) - loc) / scale
    return torch.exp(-0.5 * z**2) / (scale * math.sqrt(2 * math.pi) * t * (1 - t))


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise, with t [B] broadcast over the remaining dims."""
    t = _broadcast(t, x0)
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """v = d x_t / dt = noise - x0."""
    return noise - x0


def snr(t: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio of x_t: (1 - t)^2 / t^2."""
    return (1 - t) ** 2 / t**2


def vlb_weight(t: torch.Tensor) -> torch.Tensor:
    """(1 - t) / t = -SNR'(t) t^2 / 2: the weight that turns ||v_hat - v||^2 into the VLB integrand.

    t is clamped to >= T_CLAMP, where the weight would blow up."""
    t = t.clamp(min=T_CLAMP)
    return (1 - t) / t


def caption_drop_mask(
    n: int, p: float, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Bool [n]: True where the caption is replaced by the null embedding (probability p each)."""
    if not 0.0 <= p <= 1.0:
        raise UserError(f"caption drop probability must be in [0, 1], got {p}")
    gen_device = generator.device if generator is not None else "cpu"
    mask = torch.rand(n, generator=generator, device=gen_device) < p
    return mask.to(device) if device is not None else mask


def flow_loss(
    model,
    x0: torch.Tensor,
    text_states: torch.Tensor,
    text_mask: torch.Tensor | None,
    pooled: torch.Tensor | None,
    *,
    t: torch.Tensor,
    noise: torch.Tensor,
    drop_text: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-sample rectified-flow loss [B]: mean over (C, H, W) of (v_hat - (noise - x0))^2, in float32."""
    x_t = interpolate(x0, noise, t)
    v_hat = model(x_t, t, text_states, text_mask=text_mask, pooled=pooled, drop_text=drop_text)
    err = v_hat.float() - velocity_target(x0, noise).float()
    return err.pow(2).flatten(1).mean(1)
