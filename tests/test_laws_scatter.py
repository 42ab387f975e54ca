"""Excess scatter: budgets' optima that scatter about their law more than their bootstrap says (a parabola's
bootstrap trusts its shape) widen the law's intervals by a between-budget spread tau, estimated by moments."""

import numpy as np
import pytest

from ditlaws.laws.approach2 import excess_scatter, fit_law, with_scatter

C = np.geomspace(1e17, 1e21, 200)
TRUTH = 1e-3 * C**0.5
SIGMA = 0.02  # each budget's own bootstrap noise (log space)


def _budgets(tau: float, seed: int = 0, draws: int = 2000):
    rng = np.random.default_rng(seed)
    measured = TRUTH * np.exp(tau * rng.standard_normal(len(C)) + SIGMA * rng.standard_normal(len(C)))
    return measured, measured * np.exp(SIGMA * rng.standard_normal((draws, len(C))))


@pytest.mark.parametrize("tau", [0.05, 0.1])
def test_the_spread_beyond_the_bootstrap_is_recovered(tau):
    y, y_draws = _budgets(tau)
    assert excess_scatter("power", C, y, y_draws) == pytest.approx(tau, rel=0.15)


def test_no_excess_when_the_bootstrap_explains_the_scatter():
    y, y_draws = _budgets(0.0)
    assert excess_scatter("power", C, y, y_draws) < 0.5 * SIGMA
    assert excess_scatter("power", C[:2], y[:2], y_draws[:, :2]) == 0.0  # no degree of freedom left


def test_the_law_carries_it_the_exponent_interval_matches_least_squares():
    tau = 0.1
    y, y_draws = _budgets(tau)
    law = fit_law("N_opt", "power", "N_opt", C, y, y_draws)
    assert law.excess_scatter == pytest.approx(tau, rel=0.15)
    assert law.as_dict()["excess_scatter"] == law.excess_scatter
    x = np.log(C)
    ols_se = np.sqrt((tau**2 + SIGMA**2) / np.sum((x - x.mean()) ** 2))  # the exponent's standard error
    assert np.std(law.draws[:, 1]) == pytest.approx(ols_se, rel=0.15)
    explained = TRUTH * np.exp(SIGMA * np.random.default_rng(1).standard_normal(len(C)))  # scatter = bootstrap
    noise_only = fit_law("N_opt", "power", "N_opt", C, explained, y_draws)
    assert noise_only.excess_scatter < 0.5 * SIGMA
    assert np.std(noise_only.draws[:, 1]) < 0.5 * np.std(law.draws[:, 1])


def test_scatter_draws_are_seeded_and_keep_missing_draws_missing():
    d = np.full((5, 3), 2.0)
    d[0, 1] = np.nan
    a, b = with_scatter(d, 0.1), with_scatter(d, 0.1)
    assert np.array_equal(a, b, equal_nan=True) and np.isnan(a[0, 1]) and not np.allclose(a[1:], 2.0)
    assert with_scatter(d, 0.0) is d
