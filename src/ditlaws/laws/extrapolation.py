"""An extrapolation-error model learned from nested backtests inside the data.

Run noise (the bootstrap) says how well the data pin a law down where the data are; it says nothing about whether
the law's form holds further out. To learn that from the data themselves, the law is refitted on the smallest k
budgets only, for every k from the fewest it can be fitted on, and each refit predicts every larger budget. A pair
(origin k, budget j) gives the error e = ln(actual_j) - ln(predicted_j) and the noise variance v of that error
(the bootstrap variance of the prediction plus that of the actual value).

Two shapes of misfit are weighed, since which one a law has is not known in advance. *Curvature*: a law whose form
misses a curvature in log-log; a straight line fitted through points at x_1..x_k (x = ln C) and carried to x misses
a parabola kappa·x² by kappa·phi(x), with phi(x) = x² - (a + b·x), a + b·x the least-squares line through
(x_i, x_i²); phi grows with the square of the distance from the centre of the fitted budgets, so it accounts both
for how far a prediction goes and for how wide a span the law was fitted on. *Distance*: an error that grows in
proportion to h = ln(C / C_max), how far beyond the fitted budgets the law is carried, whatever their span (a
drifting exponent; the floor law's misfit on the Porian sets looks like this: its one-budget-ahead error stays
level as its fits widen, where the curvature shape would have it grow). Both are put in one unit, the misfit one
budget step beyond the fitted budgets (a step: the median spacing of their ln C), so that a scale s means the same
in either: basis = |phi(x)| / |phi(one step)| or h / step. Each pair's error is taken as
e ~ Normal(0, v + s²·basis²): its own noise plus the misfit at scale s. For each shape s gets a posterior from the
pairs (flat prior on [0, S_MAX], on a grid), and the shapes are weighed by their marginal likelihoods (same prior,
same unit: a fair comparison). An interval at C is the predictive one: each side of the noise-only interval (in
log space; its noise sigma = side / z) combined with s·basis(C), integrated over both shapes' posteriors
(``side_quantile``). So few or noisy pairs give wide intervals, and consistent misfits give intervals that cover
them. With too few budgets (fewer than MIN_PAIRS pairs) there is no model and the prediction says so. The same
model serves every law (for the floor law and Approach 3 it is a measured stand-in, not their exact misfit). The
pairs are not independent (they share budgets), which the posterior ignores; the tests measure the coverage this
gives.
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


SHAPES = ("curvature", "distance")


def reference_step(design_lnC) -> tuple[float, float]:
    """(step, |phi| one step beyond the design): a step is the median spacing of the design's ln C (1 with one
    budget); the misfit one step beyond the largest budget is the unit of both shapes' scales."""
    x = np.unique(np.asarray(design_lnC, dtype=float))
    step = float(np.median(np.diff(x))) if len(x) > 1 else 1.0
    step = step if step > 0 else 1.0
    ref = abs(float(phi(x, x.max() + step))) if len(x) else 0.0
    return step, ref if ref > 0 else 1.0


def bases(design_lnC, lnC) -> dict[str, np.ndarray]:
    """Each shape's basis at ln C, in misfits one step beyond the design (0 at or below it for the distance)."""
    step, ref = reference_step(design_lnC)
    lnC = np.asarray(lnC, dtype=float)
    return {"curvature": np.abs(phi(design_lnC, lnC)) / ref,
            "distance": np.maximum(lnC - float(np.max(design_lnC)), 0.0) / step}


@dataclass
class ErrorModel:
    status: str  # "ok" or "none"
    s: float | None = None  # posterior median of the misfit one step beyond the design (both shapes mixed)
    shapes: dict[str, dict] = field(default_factory=dict)  # shape -> {prob, s, s_grid, weights}
    design_lnC: list[float] = field(default_factory=list)  # ln C of the budgets the law is fitted on
    pairs: list[Pair] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        step, ref = reference_step(self.design_lnC) if self.design_lnC else (None, None)
        return {"kind": "curvature|distance", "status": self.status, "s": self.s, "shapes": self.shapes,
                "design_lnC": list(self.design_lnC), "step_lnC": step, "phi_step": ref,
                "n_pairs": len(self.pairs), "n_origins": len({p.origin_C for p in self.pairs}), "note": self.note,
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
    step, ref = reference_step(design)
    basis = {"curvature": np.abs([p.phi for p in pairs]) / ref, "distance": np.array([p.h for p in pairs]) / step}
    prior = np.gradient(S_GRID) / S_MAX  # flat on [0, S_MAX], the same for both shapes (one unit)
    post, log_evidence = {}, {}
    for shape in SHAPES:
        total = v[None, :] + (S_GRID[:, None] * basis[shape][None, :]) ** 2 + 1e-300
        loglik = -0.5 * np.sum(np.log(total) + e**2 / total, axis=1)
        w = np.exp(loglik - loglik.max()) * prior
        log_evidence[shape] = float(np.log(w.sum()) + loglik.max())
        post[shape] = w / w.sum()
    top = max(log_evidence.values())
    probs = {k: float(np.exp(z - top)) for k, z in log_evidence.items()}
    probs = {k: p / sum(probs.values()) for k, p in probs.items()}
    shapes = {}
    for shape in SHAPES:
        w = post[shape]
        keep = w > 1e-9
        shapes[shape] = {"prob": probs[shape], "s": float(S_GRID[np.searchsorted(np.cumsum(w), 0.5)]),
                         "s_grid": S_GRID[keep].tolist(), "weights": (w[keep] / w[keep].sum()).tolist()}
    mix = sum(probs[k] * post[k] for k in SHAPES)
    median = float(S_GRID[np.searchsorted(np.cumsum(mix), 0.5)])
    note = "the nested backtests found no error beyond the run noise" if median == 0 else ""
    return ErrorModel("ok", s=median, shapes=shapes, design_lnC=design, pairs=pairs, note=note)


def misfit_scales(em: dict, lnC) -> tuple[np.ndarray, np.ndarray]:
    """(scales [..., K], weights [K]): the misfit's possible scales at ln C and their probabilities, over both
    shapes' posteriors (an ``ErrorModel.as_dict()``; one written before the shapes, with ``s_grid`` and ``weights``
    per unit of |phi|, reads as the curvature shape alone)."""
    lnC = np.asarray(lnC, dtype=float)
    if "shapes" not in em:
        g, w = np.asarray(em["s_grid"], dtype=float), np.asarray(em["weights"], dtype=float)
        return g * np.abs(phi(em["design_lnC"], lnC))[..., None], w
    b = bases(em["design_lnC"], lnC)
    scales, weights = [], []
    for shape, post in em["shapes"].items():
        scales.append(np.asarray(post["s_grid"], dtype=float) * b[shape][..., None])
        weights.append(post["prob"] * np.asarray(post["weights"], dtype=float))
    return np.concatenate(scales, axis=-1), np.concatenate(weights)


def side_quantile(sigma: np.ndarray, scales: np.ndarray, weights, p: float) -> np.ndarray:
    """d with sum_k w_k·Phi(d / sqrt(sigma² + scales_k²)) = p: one side of the predictive interval in log space,
    for an array sigma over budgets and the misfit's scales [..., K] there (bisection, vectorised)."""
    w = np.asarray(weights, dtype=float)
    scale = np.sqrt(np.asarray(sigma, float)[..., None] ** 2 + np.asarray(scales, float) ** 2)
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
