"""An extrapolation-error model learned from nested backtests inside the data.

Run noise (the bootstrap) says how well the data pin a law down where the data are; it says nothing about whether
the law's form holds further out. To learn that from the data themselves, the law is refitted on the smallest k
budgets only, for every k from the fewest it can be fitted on, and each refit predicts every larger budget. A pair
(origin k, budget j) gives the error e = ln(actual_j) - ln(predicted_j) and the noise variance v of that error
(the bootstrap variance of the prediction plus that of the actual value).

The model is that of a law whose form misses a curvature in log-log: a straight line fitted through points at
x_1..x_k (x = ln C) and carried to x misses a parabola kappa·x² by kappa·phi(x), with phi(x) = x² - (a + b·x),
a + b·x the least-squares line through (x_i, x_i²). phi grows with the square of the distance from the centre of
the fitted budgets, so it accounts both for how far a prediction goes and for how wide a span the law was fitted
on. Each pair's error is taken as e ~ Normal(0, v + s²·phi²): its own noise plus the law's misfit at scale s. The
scale s gets a posterior from the pairs (flat prior on [0, S_MAX], on a grid), and an interval at C is the
predictive one: each side of the noise-only interval (in log space; its noise sigma = side / z) combined with
s·|phi(ln C)| and integrated over the posterior of s (``side_quantile``), phi from the budgets the law was fitted
on. So few or noisy pairs give wide intervals, and consistent misfits give intervals that cover them. With too few
budgets (fewer than MIN_PAIRS pairs) there is no model and the prediction says so. The same model serves every law
(for the floor law and Approach 3 it is a measured stand-in, not their exact misfit). The pairs are not independent
(they share budgets), which the posterior ignores; the tests measure the coverage this gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr


def phi(design_lnC, lnC) -> np.ndarray:
    """The curvature basis: x² minus its least-squares line over the design points (x centred on the design)."""
    X = np.asarray(design_lnC, dtype=float)
    c = float(np.mean(X))
    u = X - c
    t = np.asarray(lnC, dtype=float) - c
    var = float(np.mean(u**2))
    b = float(np.mean(u**3)) / var if var > 0 else 0.0
    return t**2 - var - b * t


@dataclass(frozen=True)
class Pair:
    origin_C: float  # largest compute in the origin's fit
    C: float  # the predicted budget
    error: float  # ln actual - ln predicted
    var_noise: float  # bootstrap variance of the prediction plus that of the actual, in log space
    phi: float  # the curvature basis of the prediction (from the origin's design)

    @property
    def h(self) -> float:
        return float(np.log(self.C / self.origin_C))


S_MAX = 5.0
MIN_PAIRS = 3  # fewer leave the posterior of s so heavy-tailed that the intervals mean nothing
S_GRID = np.concatenate([[0.0], np.geomspace(1e-5, S_MAX, 160)])


@dataclass
class ErrorModel:
    status: str  # "ok" or "none"
    s: float | None = None  # posterior median of the misfit scale
    s_grid: list[float] = field(default_factory=list)  # posterior support of s ...
    weights: list[float] = field(default_factory=list)  # ... and its probabilities
    design_lnC: list[float] = field(default_factory=list)  # ln C of the budgets the law is fitted on
    pairs: list[Pair] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        return {"kind": "curvature", "status": self.status, "s": self.s, "s_grid": self.s_grid,
                "weights": self.weights, "design_lnC": list(self.design_lnC), "n_pairs": len(self.pairs),
                "n_origins": len({p.origin_C for p in self.pairs}), "note": self.note,
                "pairs": [{"origin_C": p.origin_C, "C": p.C, "h": p.h, "phi": p.phi, "error": p.error,
                           "var_noise": p.var_noise} for p in self.pairs]}


def estimate(pairs: list[Pair], design_C, *, needs: str = "") -> ErrorModel:
    """The error model from backtest pairs (``needs`` says what would have allowed one, for the note)."""
    design = np.log(np.unique(np.asarray(design_C, dtype=float))).tolist()
    pairs = [p for p in pairs if np.isfinite(p.error) and p.h > 0 and abs(p.phi) > 0]
    if len(pairs) < MIN_PAIRS:
        return ErrorModel("none", design_lnC=design, pairs=pairs,
                          note=(needs or "no nested backtest was possible") +
                          (f" ({len(pairs)} pair(s); at least {MIN_PAIRS} are needed)" if pairs else ""))
    e = np.array([p.error for p in pairs])
    v = np.array([p.var_noise if np.isfinite(p.var_noise) else 0.0 for p in pairs])
    f = np.array([p.phi for p in pairs])
    total = v[None, :] + (S_GRID[:, None] * f[None, :]) ** 2 + 1e-300
    loglik = -0.5 * np.sum(np.log(total) + e**2 / total, axis=1)
    w = np.exp(loglik - loglik.max()) * np.gradient(S_GRID)  # flat prior on s
    w /= w.sum()
    keep = w > 1e-9
    median = float(S_GRID[np.searchsorted(np.cumsum(w), 0.5)])
    note = "the nested backtests found no error beyond the run noise" if median == 0 else ""
    return ErrorModel("ok", s=median, s_grid=S_GRID[keep].tolist(), weights=(w[keep] / w[keep].sum()).tolist(),
                      design_lnC=design, pairs=pairs, note=note)


def side_quantile(sigma: np.ndarray, basis: np.ndarray, s_grid, weights, p: float) -> np.ndarray:
    """d with sum_k w_k·Phi(d / sqrt(sigma² + (s_k·basis)²)) = p: one side of the predictive interval in log
    space, for arrays sigma and basis over budgets (bisection, vectorised)."""
    g, w = np.asarray(s_grid, dtype=float), np.asarray(weights, dtype=float)
    scale = np.sqrt(np.asarray(sigma, float)[..., None] ** 2 + (g * np.asarray(basis, float)[..., None]) ** 2)
    scale = np.maximum(scale, 1e-300)
    lo, hi = np.zeros(np.shape(sigma)), np.full(np.shape(sigma), 1.0)
    while True:  # bracket
        grow = (w * ndtr(hi[..., None] / scale)).sum(-1) < p
        if not grow.any() or hi.max() > 1e6:
            break
        hi = np.where(grow, hi * 4, hi)
    for _ in range(60):
        mid = (lo + hi) / 2
        below = (w * ndtr(mid[..., None] / scale)).sum(-1) < p
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def log_var(draws: np.ndarray) -> float:
    """Variance of ln(draws) over the finite positive draws (0 when fewer than two)."""
    d = np.asarray(draws, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ld = np.log(d[np.isfinite(d) & (d > 0)])
    return float(np.var(ld, ddof=1)) if len(ld) > 1 else 0.0
