"""Closed-form rectified flows for Gaussian data: ground truth for the likelihood, VLB and loss estimators.

For x0 ~ N(mu, diag sigma^2) and x_t = (1 - t) x0 + t eps, every dimension is jointly Gaussian:

    x_t ~ N(m_t, s_t^2),  m_t = (1 - t) mu,  s_t^2 = (1 - t)^2 sigma^2 + t^2
    Cov(x0, x_t) = (1 - t) sigma^2,  Cov(eps, x_t) = t

so the marginal velocity (the minimiser of the flow loss) is

    v(x, t) = E[eps - x0 | x_t = x] = a_t (x - m_t) - mu,   a_t = (t - (1 - t) sigma^2) / s_t^2

(note d m_t / dt = -mu and d log s_t / dt = a_t: the field transports the marginals exactly). For a mixture of
Gaussians, v is the posterior-responsibility-weighted average of the components' fields.
"""

from __future__ import annotations

import math

import torch


class GaussianMixtureFlow(torch.nn.Module):
    """v(x, t) of the rectified flow for data ~ sum_k w_k N(mu_k, diag sigma_k^2); callable like the DiT.

    ``shift`` adds a constant to the field, a deliberately imperfect model (its loss and VLB term are > optimal).
    """

    def __init__(self, means, stds, weights=None, shift: float = 0.0):
        super().__init__()
        means = torch.as_tensor(means, dtype=torch.float64)
        stds = torch.as_tensor(stds, dtype=torch.float64)
        if means.ndim == 1:
            means, stds = means[None], stds[None]
        weights = torch.ones(len(means)) if weights is None else torch.as_tensor(weights)
        self.register_buffer("means", means)  # [K, D]
        self.register_buffer("stds", stds.expand_as(means).clone())  # [K, D]
        self.register_buffer("log_weights", torch.log(weights.double() / weights.sum()))
        self.shift = shift

    def _components(self, x: torch.Tensor, t: torch.Tensor):
        x = x.double().flatten(1)[:, None]  # [B, 1, D]
        t = t.double().view(-1, 1, 1)
        m = (1 - t) * self.means
        var = (1 - t) ** 2 * self.stds**2 + t**2
        log_p = -0.5 * (((x - m) ** 2) / var + torch.log(2 * math.pi * var)).sum(-1) + self.log_weights  # [B, K]
        a = (t - (1 - t) * self.stds**2) / var
        return log_p, a * (x - m) - self.means  # [B, K], [B, K, D]

    def forward(self, x_t, t, text_states=None, text_mask=None, pooled=None, drop_text=None):
        log_p, v_k = self._components(x_t, t.expand(x_t.shape[0]) if t.ndim == 0 else t)
        v = (torch.softmax(log_p, dim=1)[..., None] * v_k).sum(1) + self.shift
        return v.view_as(x_t).to(x_t.dtype)

    def log_prob(self, x: torch.Tensor, t: float = 0.0) -> torch.Tensor:
        """log p_t(x), exact, per sample [B] (t = 0: the data density)."""
        log_p, _ = self._components(x, torch.full((x.shape[0],), t, dtype=torch.float64))
        return torch.logsumexp(log_p, dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k] * eps

    def expected_sq_error(self, x0: torch.Tensor, t: float) -> torch.Tensor:
        """E_eps ||v(x_t, t) - (eps - x0)||^2 for a single-Gaussian flow, per sample [B] (closed form).

        With x_t = (1 - t) x0 + t eps the error is c1 (x0 - mu) + c2 eps + shift, c1 = a_t (1 - t) + 1,
        c2 = a_t t - 1, whose mean square is (c1 (x0 - mu) + shift)^2 + c2^2 per dimension."""
        if self.means.shape[0] != 1:
            raise ValueError("expected_sq_error is closed form for one Gaussian component only")
        mu, sigma = self.means[0], self.stds[0]
        var = (1 - t) ** 2 * sigma**2 + t**2
        a = (t - (1 - t) * sigma**2) / var
        c1, c2 = a * (1 - t) + 1, a * t - 1
        return ((c1 * (x0.double().flatten(1) - mu) + self.shift) ** 2 + c2**2).sum(1)
