"""What Approach 3's fitters share: the data of a fit in log space (``Problem``), the residuals of
L(N, D) = E + A/N^alpha + B/D^beta and their Jacobian, the Huber function and the two estimators' objectives.

``parametric`` (the point fit), ``refit`` (batched bootstrap refits) and ``vpnls`` (variable projection) all build on
this module and on nothing of each other's internals, so the laws package has no import circle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

HUBER_DELTA = 1e-3
MLE_DELTA = 1.345
EXPONENT_MAX = 5.0


@dataclass
class Problem:
    """The data of a fit in log space, and the parameter bounds they imply."""

    lnN: np.ndarray
    lnD: np.ndarray
    lnL: np.ndarray
    bounds: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def of(cls, N, D, loss) -> Problem:
        lnN, lnD = np.log(np.asarray(N, float)), np.log(np.asarray(D, float))
        lnL = np.log(np.asarray(loss, float))
        lo = float(lnL.min())
        # E lies below every loss; 10 e-folds below the smallest loss counts as "no floor".
        bounds = [(-50.0, 250.0), (-50.0, 250.0), (lo - 10.0, lo + 0.5), (0.0, EXPONENT_MAX), (0.0, EXPONENT_MAX)]
        return cls(lnN, lnD, lnL, bounds)

    @property
    def lower(self) -> np.ndarray:
        return np.array([b[0] for b in self.bounds])

    @property
    def upper(self) -> np.ndarray:
        return np.array([b[1] for b in self.bounds])


# ---------------------------------------------------------------------------------------------------- objectives


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss rho_delta(r) and its derivative psi(r)."""
    small = np.abs(r) <= delta
    return np.where(small, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta)), np.clip(r, -delta, delta)


def huber_log_normaliser(delta: float = MLE_DELTA) -> float:
    """ln Z, Z = integral of exp(-rho_delta(u)) du = sqrt(2 pi)·(2 Phi(delta) - 1) + 2 exp(-delta²/2) / delta."""
    return float(np.log(np.sqrt(2 * np.pi) * (2 * norm.cdf(delta) - 1) + 2 * np.exp(-delta**2 / 2) / delta))


def residuals(theta: np.ndarray, p: Problem) -> tuple[np.ndarray, np.ndarray]:
    """r = ln L_hat - ln L and the softmax weights [3, n] of the three terms (for the Jacobian)."""
    ln_a, ln_b, ln_e, alpha, beta = theta
    t0, t1 = ln_a - alpha * p.lnN, ln_b - beta * p.lnD
    top = np.maximum(np.maximum(t0, t1), ln_e)
    e = np.stack([np.exp(t0 - top), np.exp(t1 - top), np.exp(ln_e - top)])
    total = e.sum(axis=0)
    return top + np.log(total) - p.lnL, e / total


def jacobian(weights: np.ndarray, p: Problem) -> np.ndarray:
    """dr/dtheta [n, 5] from the softmax weights [3, n]."""
    return np.stack([weights[0], weights[1], weights[2], -weights[0] * p.lnN, -weights[1] * p.lnD], axis=1)


def huber_objective(theta: np.ndarray, p: Problem, delta: float = HUBER_DELTA) -> tuple[float, np.ndarray]:
    """Summed Huber loss of the residuals and its gradient."""
    r, w = residuals(theta, p)
    value, psi = huber(r, delta)
    return float(np.sum(value)), jacobian(w, p).T @ psi


def profile_sigma(r: np.ndarray, delta: float = MLE_DELTA, weights: np.ndarray | None = None,
                  iterations: int = 60) -> np.ndarray:
    """The sigma minimising the Huber negative log-likelihood for fixed residuals: the root of
    sum w·psi(r/sigma)·(r/sigma) = sum w (batched over leading axes; fixed-point iteration from the RMS)."""
    w = np.ones_like(r) if weights is None else weights
    n = w.sum(axis=-1)
    sigma = np.sqrt((w * r**2).sum(axis=-1) / n)
    sigma = np.where(sigma > 0, sigma, 1e-300)
    for _ in range(iterations):
        u = r / sigma[..., None]
        pu = np.where(np.abs(u) <= delta, u * u, delta * np.abs(u))
        sigma = sigma * np.sqrt((w * pu).sum(axis=-1) / n)
        sigma = np.where(sigma > 0, sigma, 1e-300)
    return sigma


def neg_log_likelihood(theta: np.ndarray, p: Problem, sigma: float, delta: float = MLE_DELTA) -> float:
    """sum rho(r/sigma) + n·ln sigma + n·ln Z under the Huber likelihood."""
    r, _ = residuals(theta, p)
    return float(np.sum(huber(r / sigma, delta)[0]) + len(r) * (np.log(sigma) + huber_log_normaliser(delta)))


def mle_objective(params: np.ndarray, p: Problem, delta: float = MLE_DELTA) -> tuple[float, np.ndarray]:
    """The Huber negative log-likelihood over (theta, ln sigma) and its gradient."""
    theta, ln_sigma = params[:5], params[5]
    sigma = np.exp(ln_sigma)
    r, w = residuals(theta, p)
    u = r / sigma
    value, psi = huber(u, delta)
    n = len(r)
    grad_theta = jacobian(w, p).T @ psi / sigma
    grad_sigma = n - np.sum(psi * u)
    return float(np.sum(value) + n * (ln_sigma + huber_log_normaliser(delta))), np.append(grad_theta, grad_sigma)
