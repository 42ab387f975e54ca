import math

import pytest
import torch

from ditlaws import flow
from ditlaws.errors import UserError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("stratified", [False, True])
def test_logit_normal_moments(stratified):
    t = flow.sample_t(20000, "logit_normal", loc=0.5, scale=1.3, stratified=stratified, generator=_gen())
    z = torch.logit(t.double())
    assert ((t > 0) & (t < 1)).all()
    assert abs(z.mean().item() - 0.5) < 0.05
    assert abs(z.std().item() - 1.3) < 0.05


def test_uniform_moments():
    t = flow.sample_t(20000, "uniform", generator=_gen())
    assert abs(t.mean().item() - 0.5) < 0.01
    assert abs(t.var().item() - 1 / 12) < 0.005


@pytest.mark.parametrize("sampler", ["uniform", "logit_normal"])
def test_stratified_one_sample_per_quantile_bin(sampler):
    n = 64
    t = flow.sample_t(n, sampler, loc=-0.3, scale=0.8, stratified=True, generator=_gen(3)).double()
    # map back through the CDF: each u_i must land in its own bin [i/n, (i+1)/n)
    u = t if sampler == "uniform" else 0.5 * (1 + torch.erf((torch.logit(t) + 0.3) / (0.8 * math.sqrt(2))))
    bins = torch.floor(u * n).long().clamp(max=n - 1)
    assert sorted(bins.tolist()) == list(range(n))
    assert not torch.equal(t, t.sort().values), "stratified draws must be shuffled"


def test_seeded_determinism_and_bad_sampler():
    a = flow.sample_t(8, stratified=True, generator=_gen(7))
    b = flow.sample_t(8, stratified=True, generator=_gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, flow.sample_t(8, stratified=True, generator=_gen(8)))
    with pytest.raises(UserError, match="valid: logit_normal, uniform"):
        flow.sample_t(4, "cosine")


def test_logit_normal_pdf_integrates_to_one():
    t = torch.linspace(1e-5, 1 - 1e-5, 200001, dtype=torch.float64)
    p = flow.logit_normal_pdf(t, loc=0.4, scale=0.9)
    assert abs(torch.trapezoid(p, t).item() - 1) < 1e-3


def test_interpolant_endpoints_and_target():
    x0, noise = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    assert torch.equal(flow.interpolate(x0, noise, torch.zeros(3)), x0)
    assert torch.equal(flow.interpolate(x0, noise, torch.ones(3)), noise)
    t, h = torch.tensor([0.2, 0.5, 0.9]), 1e-3
    dx = (flow.interpolate(x0, noise, t + h) - flow.interpolate(x0, noise, t - h)) / (2 * h)
    torch.testing.assert_close(dx, flow.velocity_target(x0, noise), atol=1e-3, rtol=1e-3)


def test_vlb_weight_is_minus_half_snr_derivative_times_t_squared():
    t = torch.tensor([0.05, 0.3, 0.7, 0.99], dtype=torch.float64)
    h = 1e-6
    dsnr = (flow.snr(t + h) - flow.snr(t - h)) / (2 * h)
    torch.testing.assert_close(flow.vlb_weight(t), -0.5 * dsnr * t**2, rtol=1e-6, atol=0)
    assert torch.isfinite(flow.vlb_weight(torch.zeros(1))).all()


def test_caption_drop_rate():
    mask = flow.caption_drop_mask(50000, 0.1, generator=_gen())
    assert mask.dtype == torch.bool
    assert abs(mask.float().mean().item() - 0.1) < 0.005
    assert torch.equal(mask, flow.caption_drop_mask(50000, 0.1, generator=_gen()))
    assert not flow.caption_drop_mask(100, 0.0).any() and flow.caption_drop_mask(100, 1.0).all()
    with pytest.raises(UserError):
        flow.caption_drop_mask(4, 1.5)


def test_flow_loss_is_per_sample_mse_and_zero_for_the_oracle():
    x0, noise = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    t = torch.rand(4)
    seen = {}

    def oracle(x_t, t_in, text_states, text_mask=None, pooled=None, drop_text=None):
        seen.update(text_mask=text_mask, pooled=pooled, drop_text=drop_text)
        return noise - x0

    drop = torch.tensor([True, False, False, True])
    loss = flow.flow_loss(oracle, x0, torch.zeros(4, 2, 5), None, None, t=t, noise=noise, drop_text=drop)
    assert loss.shape == (4,) and torch.all(loss == 0)
    assert seen["drop_text"] is drop

    zero = lambda x_t, t, s, **kw: torch.zeros_like(x_t)
    loss = flow.flow_loss(zero, x0, None, None, None, t=t, noise=noise)
    torch.testing.assert_close(loss, (noise - x0).pow(2).mean(dim=(1, 2, 3)))
