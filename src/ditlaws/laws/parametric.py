"""Approach 3: the parametric loss L(N, D) = E + A/N^alpha + B/D^beta fitted to every run, and its two estimators.

Parameters are ``theta`` = (ln A, ln B, ln E, alpha, beta) (``forms.THETA``), so ln L_hat = logsumexp(ln A -
alpha ln N, ln B - beta ln D, ln E); r = ln L_hat - ln L is the residual of a run.

* ``huber`` (Hoffmann et al. 2022): minimise the summed Huber loss of r with delta = 1e-3 (in units of ln L).
* ``mle`` (the Huber-likelihood reading of Besiroglu et al. 2024, "Chinchilla scaling: a replication attempt"):
  the residuals are i.i.d. with density exp(-rho(r/sigma)) / (sigma·Z), rho the Huber function with delta = 1.345
  in units of sigma (Gaussian in the core, Laplace in the tails) and sigma free; minimise the negative
  log-likelihood sum rho(r/sigma) + n·ln sigma + n·ln Z over theta and sigma. Unlike a fixed delta of 1e-3 its
  core adapts to the real noise, and it reports sigma and the -log-likelihood.

The point fit searches by variable projection (``vpnls``, default: a 2-D search over the exponents, the linear
parameters by non-negative least squares) or scores Chinchilla's 5-D grid of starts at once and descends from the
best ones (``lbfgs``); both end with L-BFGS-B within ``bounds``. The bootstrap refits every resample at once from
the point estimate (``ditlaws.laws.refit``). A fit whose parameter did not move from its start value, or that ends
on a bound, is flagged.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from ditlaws.laws import forms
from ditlaws.laws.objective import (  # noqa: F401  (re-exported: the names users and tests know from here)
    EXPONENT_MAX,
    HUBER_DELTA,
    MLE_DELTA,
    Problem,
    huber,
    huber_log_normaliser,
    huber_objective,
    jacobian,
    mle_objective,
    neg_log_likelihood,
    profile_sigma,
    residuals,
)
from ditlaws.laws.refit import refit
from ditlaws.laws.vpnls import fit_vpnls

ESTIMATORS = ("huber", "mle")
SOLVERS = ("vpnls", "lbfgs")
# Chinchilla's initialisation grid, in THETA order's names.
GRID = {
    "ln_A": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "ln_B": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "ln_E": (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}


@dataclass(frozen=True)
class ParametricLoss:
    """A fitted L(N, D). ``N_exponent`` / ``D_exponent`` are the exponents of N_opt and D_opt in C (not to be
    confused with ``alpha`` and ``beta``, the exponents of N and D in the loss)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    estimator: str = "huber"
    objective: float = float("nan")  # the estimator's minimised objective
    sigma: float = float("nan")  # the residual scale (fitted by "mle"; profiled at the optimum for "huber")
    neg_log_likelihood: float = float("nan")  # under the Huber likelihood with MLE_DELTA, at sigma
    flags: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    solver: str = "vpnls"  # how the point estimate was searched (SOLVERS)

    def __call__(self, N, D):
        N, D = np.asarray(N, dtype=float), np.asarray(D, dtype=float)
        return self.E + self.A / N**self.alpha + self.B / D**self.beta

    @property
    def theta(self) -> np.ndarray:
        with np.errstate(divide="ignore"):  # E = 0 (a truth without a floor): ln E = -inf
            return np.array([np.log(self.A), np.log(self.B), np.log(self.E), self.alpha, self.beta])

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    @property
    def N_exponent(self) -> float:
        """Exponent of N_opt in C: beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def D_exponent(self) -> float:
        """Exponent of D_opt in C: alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    def optimal(self, C) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Closed-form N_opt, D_opt under C = 6·N·D, and the loss there (arrays shaped like C)."""
        shape = np.shape(C)
        opt = forms.parametric_optimum(self.theta, np.ravel(C))
        return tuple(opt[k].reshape(shape) for k in ("N_opt", "D_opt", "L_opt"))

    @classmethod
    def from_theta(cls, theta, **extra) -> ParametricLoss:
        ln_a, ln_b, ln_e, alpha, beta = (float(v) for v in theta)
        return cls(E=float(np.exp(ln_e)), A=float(np.exp(ln_a)), B=float(np.exp(ln_b)), alpha=alpha, beta=beta,
                   **extra)


# ---------------------------------------------------------------------------------------------------- fitting


def grid_starts(p: Problem, delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """All grid starts (clipped into the bounds) and their Huber objective, evaluated at once."""
    starts = np.array(list(itertools.product(*(GRID[k] for k in forms.THETA))))
    starts = np.clip(starts, p.lower, p.upper)
    a, b, e, alpha, beta = (starts[:, i:i + 1] for i in range(5))
    terms = np.stack([a - alpha * p.lnN, b - beta * p.lnD, np.broadcast_to(e, (len(starts), len(p.lnN)))])
    values = huber(logsumexp(terms, axis=0) - p.lnL, delta)[0].sum(axis=1)
    return starts, values


def _lbfgs(fun, x0, bounds, scale: float, strict: bool = False):
    # Huber sums are tiny (~r² with r ~ 1e-3): scale them so L-BFGS's tolerances, which are relative to
    # max(|f|, 1), do not stop it at the first step. The minimiser is unchanged.
    scaled = lambda x: tuple(v / scale for v in fun(x))
    opts = {"maxiter": 5000, "ftol": 1e-14, "gtol": 1e-10} if strict else {"maxiter": 1000}
    return minimize(scaled, x0, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)


def fit_parametric(N, D, loss, *, estimator: str = "huber", solver: str = "vpnls", n_starts: int = 16,
                   init=None) -> ParametricLoss:
    """Fit L(N, D).

    ``vpnls`` (default): variable projection (``ditlaws.laws.vpnls``): a grid over (alpha, beta) only, (E, A, B) >= 0
    by non-negative least squares, refined by 2-D Gauss-Newton, then polished by L-BFGS-B in all five parameters
    (which can only lower the objective). ``lbfgs``: all of Chinchilla's 5-D grid starts are scored; a batched
    Levenberg-Marquardt descends from the ``n_starts`` best of them (or from ``init``) and L-BFGS-B polishes the
    best. Chinchilla ran L-BFGS from every grid point; scoring the grid first and descending from the best few
    reaches the same minimum at a fraction of the cost (the tests check recovery of known parameters)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator {estimator!r}; valid: {ESTIMATORS}")
    if solver not in SOLVERS:
        raise ValueError(f"solver {solver!r}; valid: {SOLVERS}")
    p = Problem.of(N, D, loss)
    if solver == "vpnls" and init is None:
        return _fit_vpnls(p, estimator)
    if init is not None:
        starts = np.clip(np.atleast_2d(np.asarray(init, dtype=float)), p.lower, p.upper)
    else:
        grid, values = grid_starts(p)
        starts = grid[np.argsort(values, kind="stable")[:n_starts]]
    # Descend from every start at once (batched Levenberg-Marquardt), then polish the best with L-BFGS-B.
    ends = refit(starts, p, np.ones((len(starts), len(p.lnL))), iterations=400)
    values = np.array([huber_objective(t, p)[0] if np.all(np.isfinite(t)) else np.inf for t in ends])
    i = int(np.argmin(values))
    best_start = starts[i]
    best = _lbfgs(lambda x: huber_objective(x, p), ends[i], p.bounds, HUBER_DELTA**2, strict=True)
    theta, objective = best.x, best.fun * HUBER_DELTA**2
    r, _ = residuals(theta, p)
    sigma = float(profile_sigma(r))
    if estimator == "mle":
        x0 = np.append(theta, np.log(sigma if sigma > 0 else 1e-6))
        bounds = [*p.bounds, (-30.0, 5.0)]
        res = _lbfgs(lambda x: mle_objective(x, p), x0, bounds, 1.0, strict=True)
        theta, sigma, objective = res.x[:5], float(np.exp(res.x[5])), float(res.fun)
    nll = neg_log_likelihood(theta, p, sigma) if sigma > 0 else float("nan")
    flags, messages = fit_flags(theta, best_start, p)
    return ParametricLoss.from_theta(theta, estimator=estimator, objective=float(objective), sigma=sigma,
                                     neg_log_likelihood=nll, flags=tuple(flags), messages=tuple(messages),
                                     solver="lbfgs")


def _fit_vpnls(p: Problem, estimator: str) -> ParametricLoss:
    theta, _ = fit_vpnls(p, estimator)
    if estimator == "huber":
        res = _lbfgs(lambda x: huber_objective(x, p), theta, p.bounds, HUBER_DELTA**2, strict=True)
        if res.fun * HUBER_DELTA**2 <= huber_objective(theta, p)[0]:
            theta = res.x
        objective = huber_objective(theta, p)[0]
        sigma = float(profile_sigma(residuals(theta, p)[0]))
    else:
        sigma = float(profile_sigma(residuals(theta, p)[0]))
        x0 = np.append(theta, np.log(sigma if sigma > 0 else 1e-6))
        res = _lbfgs(lambda x: mle_objective(x, p), x0, [*p.bounds, (-30.0, 5.0)], 1.0, strict=True)
        if res.fun <= mle_objective(x0, p)[0]:
            theta, sigma = res.x[:5], float(np.exp(res.x[5]))
        objective = mle_objective(np.append(theta, np.log(sigma)), p)[0]
    nll = neg_log_likelihood(theta, p, sigma) if sigma > 0 else float("nan")
    flags, messages = fit_flags(theta, None, p)
    return ParametricLoss.from_theta(theta, estimator=estimator, objective=float(objective), sigma=sigma,
                                     neg_log_likelihood=nll, flags=tuple(flags), messages=tuple(messages),
                                     solver="vpnls")


def fit_flags(theta: np.ndarray, start: np.ndarray | None, p: Problem) -> tuple[list[str], list[str]]:
    """Parameters that never moved from their start value, or that sit on a bound."""
    flags, messages = [], []
    for i, name in enumerate(forms.THETA):
        lo, hi = p.bounds[i]
        if start is not None and abs(theta[i] - start[i]) <= 1e-9 * (1 + abs(start[i])):
            flags.append(f"{name}_at_start")
            messages.append(f"Approach 3: {name} = {theta[i]:.6g} never moved from its start value: the data do "
                            f"not constrain it (its term is negligible); treat the fit as unreliable")
        if min(theta[i] - lo, hi - theta[i]) <= 1e-6 * (1 + abs(theta[i])):
            flags.append(f"{name}_at_bound")
            what = {"ln_E": "no irreducible loss resolved (E at its lower bound)" if theta[i] - lo < hi - theta[i]
                    else "E at its upper bound"}.get(name, "the optimum lies outside the allowed range")
            messages.append(f"Approach 3: {name} = {theta[i]:.6g} sits on its bound [{lo:g}, {hi:g}]: {what}")
    return flags, messages
