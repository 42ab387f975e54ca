"""Approach 3's bootstrap: every resample's L(N, D) refitted at once, warm-started from the point estimate.

A resample of runs drawn with replacement is the original runs with integer weights (how often each was drawn),
so all R refits share one design and differ in their weights [R, n] (and, for the ``noise`` bootstrap, in their
losses [R, n]). Each refit is a damped Gauss-Newton (Levenberg-Marquardt) iteration on the estimator's objective,
vectorised over resamples: iteratively reweighted least squares for the Huber loss, with sigma profiled between
steps for the Huber likelihood. Steps that do not lower a resample's objective are refused and its damping raised;
parameters are kept inside the fit's bounds. Starting at the point estimate, each refit finds the nearby optimum of
its resample, so the draws describe the sampling spread of that optimum (not jumps between distant local minima).
"""

from __future__ import annotations

import numpy as np

from ditlaws.laws.objective import HUBER_DELTA, MLE_DELTA, Problem, huber, profile_sigma


def _residuals(theta: np.ndarray, p: Problem, lnL: np.ndarray):
    """Batched residuals [R, n] and Jacobian [R, n, 5]."""
    ln_a, ln_b, ln_e, alpha, beta = (theta[:, i:i + 1] for i in range(5))
    t0, t1 = ln_a - alpha * p.lnN, ln_b - beta * p.lnD
    top = np.maximum(np.maximum(t0, t1), ln_e)
    e0, e1, e2 = np.exp(t0 - top), np.exp(t1 - top), np.exp(ln_e - top)
    total = e0 + e1 + e2
    w0, w1 = e0 / total, e1 / total
    J = np.empty((*t0.shape, 5))
    J[..., 0], J[..., 1], J[..., 2] = w0, w1, e2 / total
    J[..., 3], J[..., 4] = -w0 * p.lnN, -w1 * p.lnD
    return top + np.log(total) - lnL, J


def _objective(r: np.ndarray, weights: np.ndarray, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-resample objective [R] and the Huber threshold in units of r [R] (for the IRLS step)."""
    if estimator == "huber":
        return (weights * huber(r, HUBER_DELTA)[0]).sum(1), np.full(len(r), HUBER_DELTA)
    sigma = profile_sigma(r, MLE_DELTA, weights)
    value = (weights * huber(r / sigma[:, None], MLE_DELTA)[0]).sum(1) + weights.sum(1) * np.log(sigma)
    return value, MLE_DELTA * sigma


def refit(theta0: np.ndarray, p: Problem, weights: np.ndarray, lnL: np.ndarray | None = None,
          estimator: str = "huber", iterations: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Refit every resample: weights [R, n] (and optionally losses ln L [R, n]) -> theta [R, 5], from theta0 [5]
    (or one start per resample, [R, 5]).

    Resamples whose objective is not finite at the start come back as NaN."""
    R = weights.shape[0]
    lnL = np.broadcast_to(p.lnL, weights.shape) if lnL is None else lnL
    lower, upper = p.lower, p.upper
    theta0 = np.asarray(theta0, dtype=float)
    theta = np.array(np.broadcast_to(theta0, (R, 5)))
    r, J = _residuals(theta, p, lnL)
    f, thr = _objective(r, weights, estimator)
    lam = np.full(R, 1e-3)
    active = np.flatnonzero(np.isfinite(f))
    eye = np.eye(5)
    for _ in range(iterations):
        if not len(active):
            break
        # Only the resamples still moving: IRLS weights of the Huber function (1 in the core, thr/|r| in the tails).
        w_a, r_a, J_a, thr_a = weights[active], r[active], J[active], thr[active]
        omega = w_a * np.minimum(1.0, thr_a[:, None] / np.maximum(np.abs(r_a), 1e-300))
        psi = w_a * np.clip(r_a, -thr_a[:, None], thr_a[:, None])
        Jt = J_a.transpose(0, 2, 1)
        H = np.matmul(Jt * omega[:, None, :], J_a)
        g = np.matmul(Jt, psi[..., None])[..., 0]
        # Parameters on a bound whose descent direction points out of the box stay there (an active set).
        th = theta[active]
        frozen = ((th <= lower + 1e-12) & (g > 0)) | ((th >= upper - 1e-12) & (g < 0))
        free = ~frozen
        H = H * (free[:, :, None] & free[:, None, :]) + frozen[:, :, None] * eye
        g = np.where(frozen, 0.0, g)
        diag = np.einsum("rii->ri", H)
        A = H + lam[active, None, None] * (diag[:, :, None] * eye + 1e-12 * eye)
        try:
            step = -np.linalg.solve(A, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.stack([np.linalg.lstsq(a, v, rcond=None)[0] for a, v in zip(A, g)])
        step = np.where(np.isfinite(step), step, 0.0)
        cand = np.clip(theta[active] + step, lower, upper)
        r_c, J_c = _residuals(cand, p, lnL[active])
        f_c, thr_c = _objective(r_c, w_a, estimator)
        f_a = f[active]
        better = np.isfinite(f_c) & (f_c <= f_a)
        gain = np.where(better, (f_a - f_c) / np.maximum(np.abs(f_a), 1e-300), 0.0)
        moved = np.abs(cand - theta[active]).max(axis=1)
        ok = active[better]
        theta[ok], r[ok], J[ok], f[ok], thr[ok] = cand[better], r_c[better], J_c[better], f_c[better], thr_c[better]
        lam[active] = np.where(better, np.maximum(lam[active] / 3, 1e-9), np.minimum(lam[active] * 4, 1e12))
        # Converged: an accepted step that barely changed the objective or the parameters, or damping so large
        # that nothing moves any more.
        done = (better & ((gain < tol) | (moved < 1e-10))) | (lam[active] >= 1e12)
        active = active[~done]
    theta[~np.isfinite(f)] = np.nan
    return theta


def resample_weights(n: int, R: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of n runs is drawn in each of R resamples with replacement: [R, n] counts."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=R).astype(float)
