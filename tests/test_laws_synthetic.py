"""Approach 2 and 3 recover a known truth; bootstrap intervals are honest; the closed-form allocation is right."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from ditlaws.laws.document import fit_document
from ditlaws.laws.parametric import ParametricLoss, fit_parametric
from ditlaws.laws.study import FitOptions, fit_study
from ditlaws.laws.synthetic import PAPER_LAWS, isoflop_table, paper_truth

TRUE_A, TRUE_B, TRUE_C = 0.5681, 0.4319, -0.0273


def test_paper_truth_has_the_papers_optimum():
    truth = paper_truth()
    for C in (1e17, 6e18, 1.5e21):
        N, D, L = truth.optimal(C)
        assert N == pytest.approx(PAPER_LAWS["N_opt"][0] * C**TRUE_A, rel=1e-9)
        assert L == pytest.approx(PAPER_LAWS["L_opt"][0] * C**TRUE_C, rel=1e-9)
        assert 6 * N * D == pytest.approx(C, rel=1e-12)
    assert truth.optimal(1.5e21)[0] == pytest.approx(958e6, rel=0.02)  # the paper's ~958M at 1.5e21


def test_recovers_exponents_at_low_noise():
    fit = fit_study(isoflop_table(paper_truth(), np.random.default_rng(0), noise_rel=3e-4),
                    FitOptions(n_boot=200, parametric=False), np.random.default_rng(1))
    assert len(fit.used) == 6
    exponent = {name: law.params[1] for name, law in fit.laws.items()}
    assert exponent["N_opt"] == pytest.approx(TRUE_A, abs=0.02)
    assert exponent["D_opt"] == pytest.approx(TRUE_B, abs=0.02)
    assert exponent["L_opt"] == pytest.approx(TRUE_C, abs=0.001)
    # N_opt and D_opt exponents add to one because D_opt = C / (6 N_opt) on an exact 6ND grid.
    assert exponent["N_opt"] + exponent["D_opt"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("method", ["noise", "resample"])
def test_90pct_intervals_cover_the_truth(method):
    # 0.1 % noise, 30 seeded grids, 200 resamples each (fewer than the CLI's 1000 to keep this fast).
    hits = []
    for seed in range(30):
        fit = fit_study(isoflop_table(paper_truth(), np.random.default_rng(seed), noise_rel=1e-3),
                        FitOptions(n_boot=200, parametric=False, bootstrap=method),
                        np.random.default_rng(10_000 + seed))
        row = []
        for name, true in (("N_opt", TRUE_A), ("D_opt", TRUE_B), ("L_opt", TRUE_C)):
            lo, hi = np.nanpercentile(fit.laws[name].draws[:, 1], [5, 95])
            row.append(lo <= true <= hi)
        hits.append(row)
    coverage = np.mean(hits, axis=0)
    assert (coverage >= 0.8).all(), coverage


def test_closed_form_allocation_matches_numerical_minimisation():
    for model in (paper_truth(), ParametricLoss(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28),
                  ParametricLoss(E=0.3, A=2.0, B=5.0, alpha=0.1, beta=0.2)):
        for C in (1e15, 1e18, 1.5e21):
            res = minimize_scalar(lambda x, C=C, m=model: m(np.exp(x), C / (6 * np.exp(x))),
                                  bounds=(0, 60), method="bounded", options={"xatol": 1e-10})
            N, D, L = model.optimal(C)
            assert N == pytest.approx(np.exp(res.x), rel=1e-4)
            assert D == pytest.approx(C / (6 * np.exp(res.x)), rel=1e-4)
            assert L == pytest.approx(res.fun, rel=1e-10)


def test_parametric_fit_recovers_known_parameters():
    truth = ParametricLoss(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Chinchilla's fit
    table = isoflop_table(truth, np.random.default_rng(0), noise_rel=0.0, budgets=(1e18, 1e19, 1e20, 1e21),
                          depths=range(4, 30, 2))
    fit = fit_parametric(table.N, table.D, table.loss)
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fit, name) == pytest.approx(getattr(truth, name), rel=1e-3), name


def test_predictions_of_both_approaches_agree_with_truth():
    doc = fit_document(isoflop_table(paper_truth(), np.random.default_rng(3), noise_rel=3e-4),
                       FitOptions(n_boot=200, parametric_boot=20, holdout=0), targets=[1.5e21], seed=4)
    (p,) = doc["predictions"]
    true_N, true_D, true_L = paper_truth().optimal(1.5e21)
    for approach in ("approach2", "approach3"):
        q = p[approach]
        assert q["N_opt"]["value"] == pytest.approx(true_N, rel=0.15)
        assert q["D_opt"]["value"] == pytest.approx(true_D, rel=0.15)
        assert q["L_opt"]["value"] == pytest.approx(true_L, rel=1e-3)
        assert q["N_opt"]["ci90_noise"][0] < q["N_opt"]["median"] < q["N_opt"]["ci90_noise"][1]
        assert q["N_opt"]["ci95_noise"][0] <= q["N_opt"]["ci90_noise"][0]
        assert q["N_opt"]["ci90"][0] <= q["N_opt"]["ci90_noise"][0]  # extrapolation error only widens


def test_bootstrap_is_seeded():
    table = isoflop_table(paper_truth(), np.random.default_rng(0), noise_rel=1e-3)
    a = fit_study(table, FitOptions(n_boot=100, parametric=False), np.random.default_rng(7))
    b = fit_study(table, FitOptions(n_boot=100, parametric=False), np.random.default_rng(7))
    np.testing.assert_array_equal(a.laws["N_opt"].draws, b.laws["N_opt"].draws)
