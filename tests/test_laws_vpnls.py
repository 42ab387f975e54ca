"""Approach 3 by variable projection: the exact 3-unknown NNLS, recovery of a known surface from every start, and
agreement with the L-BFGS / Levenberg-Marquardt path on the same data."""

import numpy as np
import pytest
from scipy.optimize import nnls

from ditlaws.laws.objective import HUBER_DELTA, Problem, huber, huber_objective, residuals
from ditlaws.laws.parametric import ParametricLoss, fit_parametric
from ditlaws.laws.refit import refit, resample_weights
from ditlaws.laws.synthetic import nd_grid_table
from ditlaws.laws.vpnls import _nnls3, fit_vpnls, inner, to_theta, vp_refit

TRUTH = ParametricLoss(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Chinchilla's fit: alpha != beta
NS, DS = np.geomspace(7e7, 1.6e10, 10), np.geomspace(5e9, 5e11, 10)
STARTS = [(0.05, 0.05), (2.5, 0.05), (0.05, 2.5)]  # (alpha, beta): far from the truth on every side


def test_batched_nnls_equals_scipy_nnls():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((200, 12, 3)) * np.array([1.0, 1e-3, 1e3])  # badly scaled columns
    y = rng.standard_normal((200, 12))
    ours = _nnls3(np.matmul(M.transpose(0, 2, 1), M), np.einsum("rni,rn->ri", M, y))
    for r in range(len(M)):
        ref, _ = nnls(M[r], y[r])
        np.testing.assert_allclose(ours[r], ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


def _table(seed=0, noise=1e-3):
    return nd_grid_table(TRUTH, np.random.default_rng(seed), NS, DS, noise_rel=noise)


def _start_theta(p, alpha, beta):
    """A 5-D start from (alpha, beta) with E, A, B by NNLS (the same start for both paths)."""
    a, b = np.array([alpha]), np.array([beta])
    c, _ = inner(p, a, b, np.ones((1, len(p.lnL))), p.lnL[None], "huber")
    return to_theta(c, a, b, p)[0]


@pytest.mark.parametrize("estimator", ["huber", "mle"])
def test_vpnls_recovers_the_five_parameters_from_every_start(estimator):
    t = _table()
    p = Problem.of(t.N, t.D, t.loss)
    fit = fit_parametric(t.N, t.D, t.loss, estimator=estimator, solver="vpnls")
    draws = refit(fit.theta, p, resample_weights(len(t), 400, np.random.default_rng(1)), estimator=estimator)
    lo, hi = np.percentile(draws, [2.5, 97.5], axis=0)
    truth = TRUTH.theta
    assert np.all((lo <= truth) & (truth <= hi)), (lo, truth, hi)  # the truth inside the 95 % bootstrap intervals
    assert fit.flags == ()
    if estimator == "mle":
        return
    # Every start of the 2-D search ends at the same optimum; the 5-D L-BFGS path from the same starts is compared.
    for a, b in STARTS:
        end, _ = fit_vpnls(p, estimator, start=(a, b))
        assert np.all((lo <= end) & (end <= hi))
        np.testing.assert_allclose(end[3:], fit.theta[3:], atol=2e-4)
    starts = np.array([_start_theta(p, a, b) for a, b in STARTS])
    best = huber_objective(fit.theta, p)[0]
    lbfgs = [huber_objective(fit_parametric(t.N, t.D, t.loss, solver="lbfgs", init=s).theta, p)[0] for s in starts]
    assert best <= min(lbfgs) * (1 + 1e-9)  # VPNLS reaches the lowest objective any start reaches


def test_vpnls_and_the_lbfgs_path_agree_on_noise_free_data():
    t = _table(noise=0.0)
    for solver in ("vpnls", "lbfgs"):
        fit = fit_parametric(t.N, t.D, t.loss, solver=solver)
        assert fit.solver == solver
        for name in ("E", "A", "B", "alpha", "beta"):
            assert getattr(fit, name) == pytest.approx(getattr(TRUTH, name), rel=1e-4), (solver, name)


def test_variable_projection_refits_equal_the_levenberg_marquardt_refits():
    """Two code paths for the same bootstrap: the 2-D projected Gauss-Newton and the 5-D Levenberg-Marquardt,
    both warm-started at the point estimate, find the same optimum of every resample."""
    t = _table(seed=2)
    p = Problem.of(t.N, t.D, t.loss)
    fit = fit_parametric(t.N, t.D, t.loss)
    w = resample_weights(len(t), 40, np.random.default_rng(3))
    a, b = vp_refit(fit.theta, p, w, iterations=200, tol=1e-15), refit(fit.theta, p, w, iterations=400, tol=1e-15)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    weighted = lambda x, wr: float(np.sum(wr * huber(residuals(x, p)[0], HUBER_DELTA)[0]))
    fa = np.array([weighted(x, wr) for x, wr in zip(a, w)])
    fb = np.array([weighted(x, wr) for x, wr in zip(b, w)])
    np.testing.assert_allclose(fa, fb, rtol=1e-5)  # the same optimum of each resample (both stop early by ~1e-6)
    np.testing.assert_allclose(a[:, 3:], b[:, 3:], atol=2e-3)  # ... and the same exponents
