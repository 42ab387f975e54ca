"""Approach 3 by variable projection (VPNLS): L(N, D) = E + A/N^alpha + B/D^beta searched over (alpha, beta) only.

For fixed exponents the loss is linear in c = (E, A, B) >= 0, so the five-parameter fit becomes a two-parameter
one: the profile objective f(alpha, beta) = min over c >= 0 of the estimator's objective of r = ln(X·c) - ln L,
X = [1, N^-alpha, D^-beta]. The inner minimum is found by Gauss-Newton on ln L_hat, each step a non-negative least
squares problem weighted by the Huber function's IRLS weights (``huber``: delta = 1e-3; ``mle``: delta = 1.345·sigma,
sigma profiled), solved exactly by trying the 7 supports of c (three unknowns) at once for a whole batch.
The outer search scores a grid of (alpha, beta) and refines the best points by Gauss-Newton in 2-D. Open-Athena's
analysis (arXiv 2603.22339) measured the 2-D problem's condition number at ~11 against ~3.5e11 for the 5-parameter
Huber fit; here it means no grid of 5-D starts and no parameter stuck at its start value.

The bootstrap (``vp_refit``) refits every resample at once from the point estimate: a damped Gauss-Newton on
(alpha, beta) whose gradient is the envelope gradient of f (c held at its optimum) and whose curvature is Kaufman's
projected Gauss-Newton matrix, each trial point's c from the batched inner solve.
"""

from __future__ import annotations

import numpy as np

from ditlaws.laws.objective import EXPONENT_MAX, HUBER_DELTA, MLE_DELTA, Problem, huber, profile_sigma

EXP_MIN = 1e-3  # alpha, beta >= this (0 would make a column of X equal to E's)
GRID = np.geomspace(0.02, 3.0, 24)
_SUPPORTS = np.array([[(m >> k) & 1 for k in range(3)] for m in range(1, 8)], dtype=bool)  # [7, 3]


def _nnls3(G: np.ndarray, h: np.ndarray) -> np.ndarray:
    """min_c c'Gc - 2h'c subject to c >= 0, for a batch of 3x3 problems (G [R, 3, 3], h [R, 3]) -> c [R, 3].

    Exact: the optimum is the unconstrained optimum on its own support, so the best feasible one of the 7 supports'
    solutions (and c = 0) is it."""
    R = len(h)
    d = np.sqrt(np.maximum(np.einsum("rii->ri", G), 1e-300))  # column scaling for conditioning
    Gs = G / (d[:, :, None] * d[:, None, :])
    hs = h / d
    S = _SUPPORTS[:, None, :]  # [7, 1, 3]
    m = S[..., :, None] & S[..., None, :]  # [7, 1, 3, 3]
    A = np.where(m, Gs[None], 0.0) + (np.eye(3) * ~S[..., None, :]) + 1e-13 * np.eye(3)  # [7, R, 3, 3]
    c = np.linalg.solve(A, np.where(S, hs[None], 0.0)[..., None])[..., 0]  # all supports at once: [7, R, 3]
    c = np.where(S, c, 0.0)
    v = np.einsum("kri,rij,krj->kr", c, Gs, c) - 2 * np.einsum("ri,kri->kr", hs, c)
    v = np.where(np.all(c >= 0, axis=2), v, np.inf)
    k = np.argmin(v, axis=0)
    take = v[k, np.arange(R)] < 0.0  # else c = 0 (value 0) is the best
    best = np.where(take[:, None], c[k, np.arange(R)], 0.0)
    return best / d


def _gram(U: np.ndarray, w: np.ndarray, V: np.ndarray) -> np.ndarray:
    """U' diag(w) V for a batch: [R, n, i], [R, n], [R, n, j] -> [R, i, j]."""
    return np.matmul(U.transpose(0, 2, 1) * w[:, None, :], V)


def _objective(r: np.ndarray, w: np.ndarray, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row objective [R] (up to constants) and the Huber threshold [R] in units of r."""
    if estimator == "huber":
        return (w * huber(r, HUBER_DELTA)[0]).sum(1), np.full(len(r), HUBER_DELTA)
    sigma = profile_sigma(r, MLE_DELTA, w, iterations=25)
    return (w * huber(r / sigma[:, None], MLE_DELTA)[0]).sum(1) + w.sum(1) * np.log(sigma), MLE_DELTA * sigma


def design(p: Problem, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """X [R, n, 3] = [1, N^-alpha, D^-beta] for each row's exponents."""
    n = len(p.lnN)
    return np.stack([np.ones((len(alpha), n)), np.exp(-alpha[:, None] * p.lnN), np.exp(-beta[:, None] * p.lnD)], -1)


def inner(p: Problem, alpha: np.ndarray, beta: np.ndarray, w: np.ndarray, lnL: np.ndarray, estimator: str,
          c0: np.ndarray | None = None, iterations: int = 40,
          tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """The best c = (E, A, B) >= 0 for each row's (alpha, beta): (c [R, 3], objective [R])."""
    X = design(p, alpha, beta)
    if c0 is None:  # relative least squares: (X c - L) / L, the first-order form of the log residual
        Xr = X / np.exp(lnL)[..., None]
        c = _nnls3(_gram(Xr, w, Xr), np.einsum("rni,rn->ri", Xr, w))
    else:
        c = np.array(c0, dtype=float)
    f, r, thr = _score(X, c, w, lnL, estimator)
    for _ in range(iterations):
        # Gauss-Newton on ln(X c): r(c) ~ r0 + X (c - c0) / fit; IRLS weights of the Huber function.
        fit = np.maximum(np.einsum("rni,ri->rn", X, c), 1e-300)
        omega = w * np.minimum(1.0, thr[:, None] / np.maximum(np.abs(r), 1e-300))
        Xs = X / fit[..., None]
        c_new = _nnls3(_gram(Xs, omega, Xs), np.einsum("rni,rn->ri", Xs, omega * (1 - r)))
        f_new, r_new, thr_new = _score(X, c_new, w, lnL, estimator)
        bad = np.flatnonzero(~(f_new < f))
        for t in (0.5, 0.25, 0.1):  # an IRLS step may overshoot: try shorter ones where it did
            if not len(bad):
                break
            c_t = c[bad] + t * (c_new[bad] - c[bad])
            f_t, r_t, thr_t = _score(X[bad], c_t, w[bad], lnL[bad], estimator)
            take = f_t < f_new[bad]
            i = bad[take]
            c_new[i], f_new[i], r_new[i], thr_new[i] = c_t[take], f_t[take], r_t[take], thr_t[take]
            bad = bad[~take]
        better = f_new < f
        small = ~better | (f - f_new <= tol * np.abs(f_new))
        c[better], f[better], r[better], thr[better] = c_new[better], f_new[better], r_new[better], thr_new[better]
        if small.all():
            break
    return c, f


def _score(X, c, w, lnL, estimator):
    """Objective [R], residuals [R, n] (0 where undefined) and Huber threshold [R] of coefficients c."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(np.einsum("rni,ri->rn", X, c)) - lnL
    finite = np.isfinite(r).all(1)
    r = np.where(np.isfinite(r), r, 0.0)
    value, thr = _objective(r, w, estimator)
    return np.where(finite, value, np.inf), r, thr


def to_theta(c: np.ndarray, alpha, beta, p: Problem) -> np.ndarray:
    """(E, A, B) and exponents -> theta [R, 5] = (ln A, ln B, ln E, alpha, beta), zeros at their lower bounds."""
    with np.errstate(divide="ignore"):
        logs = np.log(c)
    theta = np.stack([logs[:, 1], logs[:, 2], logs[:, 0], np.asarray(alpha, float), np.asarray(beta, float)], 1)
    return np.clip(theta, p.lower, p.upper)


def profile(p: Problem, alpha: float, beta: float, estimator: str = "huber") -> float:
    """The profile objective f(alpha, beta): the estimator's objective minimised over (E, A, B) >= 0."""
    _, v = inner(p, np.array([float(alpha)]), np.array([float(beta)]), np.ones((1, len(p.lnL))), p.lnL[None],
                 estimator)
    return float(v[0])


def fit_vpnls(p: Problem, estimator: str = "huber", n_refine: int = 3, start=None) -> tuple[np.ndarray, dict]:
    """The point search: theta [5] and what it did. The profile objective is scored on a grid of (alpha, beta);
    the ``n_refine`` best grid points descend at once by the 2-D Gauss-Newton of ``vp_refit``; the best end wins.
    With ``start`` = (alpha, beta) instead of the grid: Nelder-Mead on the profile from there (no derivatives, so no
    stall where a term vanishes), then the same Gauss-Newton."""
    if start is None:
        a, b = (g.ravel() for g in np.meshgrid(GRID, GRID, indexing="ij"))
        ones = np.ones((len(a), len(p.lnL)))
        _, values = inner(p, a, b, ones, np.broadcast_to(p.lnL, ones.shape), estimator)
        best = np.argsort(values, kind="stable")[:n_refine]
        a, b = a[best], b[best]
    else:
        from scipy.optimize import minimize

        res = minimize(lambda x: min(profile(p, *x, estimator), 1e300), np.asarray(start, float),
                       method="Nelder-Mead", bounds=[(EXP_MIN, EXPONENT_MAX)] * 2,
                       options={"xatol": 1e-4, "fatol": 0.0, "maxiter": 300})
        a, b = np.array([res.x[0]]), np.array([res.x[1]])
        best = np.arange(1)
    ones = np.ones((len(a), len(p.lnL)))
    c, _ = inner(p, a, b, ones, np.broadcast_to(p.lnL, ones.shape), estimator)
    starts = to_theta(c, a, b, p)
    w = np.ones((len(best), len(p.lnL)))
    ends = vp_refit(starts, p, w, estimator=estimator, iterations=40, tol=1e-12)  # L-BFGS-B polishes after
    X = design(p, np.nan_to_num(ends[:, 3], nan=1.0), np.nan_to_num(ends[:, 4], nan=1.0))
    c_end = np.exp(ends[:, [2, 0, 1]])
    f_end = np.where(np.isfinite(ends).all(1), _score(X, np.nan_to_num(c_end), w, np.broadcast_to(p.lnL, w.shape),
                                                      estimator)[0], np.inf)
    i = int(np.argmin(f_end))
    return ends[i], {"grid": 0 if start is not None else int(GRID.size**2), "refined": int(len(best)),
                     "start": [float(a[0]), float(b[0])]}


def vp_refit(theta0: np.ndarray, p: Problem, weights: np.ndarray, lnL: np.ndarray | None = None,
             estimator: str = "huber", iterations: int = 60, tol: float = 1e-10) -> np.ndarray:
    """Every resample refitted by variable projection: weights [R, n] (and optionally losses [R, n]) -> theta [R, 5],
    from theta0 [5] (or [R, 5]). The same contract as ``refit.refit``."""
    R, n = weights.shape
    lnL = np.broadcast_to(p.lnL, weights.shape) if lnL is None else lnL
    theta0 = np.array(np.broadcast_to(np.asarray(theta0, float), (R, 5)))
    ab = np.clip(theta0[:, 3:5], EXP_MIN, EXPONENT_MAX)
    ok0 = np.isfinite(ab).all(1)
    ab[~ok0] = 0.5
    c, f = inner(p, ab[:, 0], ab[:, 1], weights, lnL, estimator)
    lam = np.full(R, 1e-3)
    active = np.flatnonzero(np.isfinite(f))
    eye2 = np.eye(2)
    for _ in range(iterations):
        if not len(active):
            break
        a_, b_, c_, w_, l_ = ab[active, 0], ab[active, 1], c[active], weights[active], lnL[active]
        X = design(p, a_, b_)
        fit = np.einsum("rni,ri->rn", X, c_)
        r = np.log(fit) - l_
        _, thr = _objective(r, w_, estimator)
        omega = w_ * np.minimum(1.0, thr[:, None] / np.maximum(np.abs(r), 1e-300))
        psi = w_ * np.clip(r, -thr[:, None], thr[:, None])
        Jc = X / fit[..., None]  # dr/dc
        Jab = np.stack([-c_[:, 1:2] * X[..., 1] * p.lnN, -c_[:, 2:3] * X[..., 2] * p.lnD], -1) / fit[..., None]
        free = c_ > 0
        Jc = Jc * free[:, None, :]
        Gc = _gram(Jc, omega, Jc) + np.eye(3) * (~free)[:, :, None] + 1e-300
        proj = np.linalg.solve(Gc + 1e-12 * np.eye(3), _gram(Jc, omega, Jab))
        Jred = Jab - np.einsum("rni,rij->rnj", Jc, proj)
        H = _gram(Jred, omega, Jred)
        g = np.einsum("rni,rn->ri", Jab, psi)  # the envelope gradient of the profile objective
        diag = np.einsum("rii->ri", H)
        A = H + lam[active, None, None] * (diag[:, :, None] * eye2) + 1e-14 * eye2
        step = -np.linalg.solve(A, g[..., None])[..., 0]
        step = np.where(np.isfinite(step), step, 0.0)
        cand = np.clip(ab[active] + step, EXP_MIN, EXPONENT_MAX)
        c_c, f_c = inner(p, cand[:, 0], cand[:, 1], w_, l_, estimator, c0=c_, iterations=6)
        f_a = f[active]
        better = np.isfinite(f_c) & (f_c <= f_a)
        gain = np.where(better, (f_a - f_c) / np.maximum(np.abs(f_a), 1e-300), 0.0)
        moved = np.abs(cand - ab[active]).max(1)
        ok = active[better]
        ab[ok], c[ok], f[ok] = cand[better], c_c[better], f_c[better]
        lam[active] = np.where(better, np.maximum(lam[active] / 3, 1e-9), np.minimum(lam[active] * 4, 1e12))
        done = (better & ((gain < tol) | (moved < 1e-10))) | (lam[active] >= 1e12)
        active = active[~done]
    theta = to_theta(c, ab[:, 0], ab[:, 1], p)
    theta[~np.isfinite(f) | ~ok0] = np.nan
    return theta
