"""The loss law with a floor, L_opt = E + A·C^-alpha, beside the pure power law; the headline chosen by backtests."""

import numpy as np
import pytest

from ditlaws.laws import forms
from ditlaws.laws.document import fit_document
from ditlaws.laws.powerlaw import fit_floor
from ditlaws.laws.predict import load_fit
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import ParametricTruth, centred_isoflop_table, isoflop_table, paper_truth, truth_for

FLOOR_TRUTH = ParametricTruth(truth_for(0.0009, 0.5681, 20.0, -0.1, E=0.4))
BUDGETS = np.geomspace(1e17, 1e19, 7)


def test_floor_law_recovers_known_parameters_for_every_resample_at_once():
    C = np.geomspace(1e17, 6e18, 6)
    L = 0.3 + 50 * C**-0.12
    (point,) = fit_floor(C, L[None])
    assert point[0] == pytest.approx(0.3, rel=1e-6) and np.exp(point[1]) == pytest.approx(50, rel=1e-5)
    assert point[2] == pytest.approx(0.12, rel=1e-6)
    noisy = L * np.exp(1e-3 * np.random.default_rng(0).standard_normal((500, 6)))
    draws = fit_floor(C, noisy)
    assert np.isfinite(draws).all()
    lo, hi = np.percentile(draws[:, 0], [5, 95])
    assert lo < 0.3 < hi
    assert np.isnan(fit_floor(C[:3], L[None, :3])).all()  # three points leave no spare one


def test_floor_law_is_the_headline_when_the_truth_has_a_floor():
    table = centred_isoflop_table(FLOOR_TRUTH, np.random.default_rng(0), BUDGETS, noise_rel=1e-3)
    doc = fit_document(table, FitOptions(n_boot=200, parametric=False, holdout=0), targets=[1e20])
    choice = doc["approach2"]["loss_choice"]
    rms = choice["backtest_rms"]
    assert choice["headline"] == "L_opt_floor" and rms["L_opt_floor"] < rms["L_opt"]
    assert doc["headline"] == {"L_opt": ["approach2", "L_opt_floor"]}
    floor = doc["approach2"]["laws"]["L_opt_floor"]
    assert floor["E"] == pytest.approx(0.4, rel=0.1)
    p = doc["predictions"][0]["approach2"]
    assert p["L_opt_floor"]["headline"] and not p["L_opt"]["headline"]
    true_l = FLOOR_TRUTH.optimum(1e20)[1]
    assert abs(p["L_opt_floor"]["value"] / true_l - 1) < abs(p["L_opt"]["value"] / true_l - 1)


def test_pure_law_is_kept_when_the_truth_has_no_floor():
    doc = fit_document(isoflop_table(paper_truth(), np.random.default_rng(0), 3e-4),
                       FitOptions(n_boot=200, parametric=False, holdout=0), targets=[1e21])
    assert doc["headline"] == {"L_opt": ["approach2", "L_opt"]}
    assert "E_at_bound_0" in doc["approach2"]["laws"]["L_opt_floor"]["flags"]  # it finds no floor


def test_a_pure_law_prediction_below_the_fitted_floor_says_so():
    table = centred_isoflop_table(FLOOR_TRUTH, np.random.default_rng(1), BUDGETS, noise_rel=1e-3)
    doc = fit_document(table, FitOptions(n_boot=100, parametric=False, holdout=0), targets=[1e19])
    fit = load_fit(doc)
    E = fit.laws()["L_opt_floor"]["params"]["E"]
    law = fit.laws()["L_opt"]
    far = float(np.exp((np.log(E / 2) - law["params"]["ln_coef"]) / law["params"]["exponent"]))  # pure law = E/2
    p = fit.predict(far)
    pure = p["approach2"]["L_opt"]
    assert pure["value"] == pytest.approx(E / 2, rel=1e-6)
    assert any("below the floor law's E" in n for n in pure["notes"])
    assert any("L_opt (pure power law)" in w for w in p["warnings"])
    assert p["approach2"]["L_opt_floor"]["value"] > E
    near = fit.predict(1e19)["approach2"]["L_opt"]
    assert not near["notes"] or not any("below" in n for n in near["notes"])


def test_floor_law_formula_matches_its_parameters():
    params = np.array([0.25, np.log(40.0), 0.1])
    C = np.array([1e15, 1e20])
    np.testing.assert_allclose(forms.floor(params, C), 0.25 + 40.0 * C**-0.1, rtol=1e-12)
