"""Approach 3 on any runs: no isoFLOP groups needed, two estimators, batched bootstrap refits, flags, and every
point estimate inside its own interval."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad

from ditlaws.laws import forms
from ditlaws.laws.document import fit_document
from ditlaws.laws.parametric import (
    EXPONENT_MAX,
    MLE_DELTA,
    ParametricLoss,
    Problem,
    fit_flags,
    fit_parametric,
    huber,
    huber_log_normaliser,
)
from ditlaws.laws.refit import refit, resample_weights
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import isoflop_table, nd_grid_table, paper_truth

ROOT = Path(__file__).resolve().parents[1]
CHINCHILLA = ParametricLoss(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
NS, DS = np.geomspace(7e7, 1.6e10, 10), np.geomspace(5e9, 5e11, 10)


def test_chinchilla_style_csv_without_isoflop_groups_fits_approach3_and_exits_0(tmp_path):
    t = nd_grid_table(CHINCHILLA, np.random.default_rng(0), NS, DS, noise_rel=3e-3)
    csv = tmp_path / "runs.csv"
    csv.write_text("N,D,loss\n" + "\n".join(f"{n!r},{d!r},{v!r}" for n, d, v in zip(t.N.tolist(), t.D.tolist(),
                                                                                 t.loss.tolist())) + "\n")
    res = subprocess.run([sys.executable, str(ROOT / "fit_laws.py"), "--runs", str(csv), "--out", str(tmp_path / "o"),
                          "--bootstrap", "100", "--no-figures"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    skipped = [line for line in res.stderr.splitlines() if "Approach 2 skipped" in line]
    assert len(skipped) == 1 and "too_few_points" in skipped[0] and len(skipped[0]) < 300  # one short line
    assert "Approach 3 (parametric L(N, D))" in res.stdout
    fit = json.loads((tmp_path / "o" / "fit.json").read_text())
    assert fit["approach2"]["status"] == "skipped" and fit["approach3"]["status"] == "fitted"
    assert fit["approach3"]["exponents"]["N_opt"] == pytest.approx(CHINCHILLA.N_exponent, abs=0.03)
    assert fit["headline"]["L_opt"] == ["approach3", "L_opt"]
    assert {"N_opt", "D_opt", "L_opt"} <= fit["predictions"][0]["approach3"].keys()


def test_mle_recovers_known_parameters_under_heavy_tailed_noise():
    t = nd_grid_table(CHINCHILLA, np.random.default_rng(0), NS, DS, noise_rel=3e-3, tail=3)
    t.loss[[5, 37, 71]] *= 1.15  # and three gross outliers
    fit = fit_parametric(t.N, t.D, t.loss, estimator="mle")
    assert fit.E == pytest.approx(CHINCHILLA.E, rel=0.02)
    assert fit.alpha == pytest.approx(CHINCHILLA.alpha, abs=0.015)
    assert fit.beta == pytest.approx(CHINCHILLA.beta, abs=0.02)
    assert fit.N_exponent == pytest.approx(CHINCHILLA.N_exponent, abs=0.015)
    assert fit.flags == ()


def test_mle_negative_log_likelihood_equals_a_direct_computation():
    t = nd_grid_table(CHINCHILLA, np.random.default_rng(1), NS, DS, noise_rel=3e-3, tail=3)
    fit = fit_parametric(t.N, t.D, t.loss, estimator="mle")
    Z, _ = quad(lambda u: np.exp(-huber(np.array(u), MLE_DELTA)[0]), -np.inf, np.inf)
    assert huber_log_normaliser() == pytest.approx(np.log(Z), rel=1e-8)
    r = np.log(fit(t.N, t.D)) - np.log(t.loss)
    direct = np.sum(huber(r / fit.sigma, MLE_DELTA)[0]) + len(r) * (np.log(fit.sigma) + np.log(Z))
    assert fit.neg_log_likelihood == pytest.approx(direct, rel=1e-8)
    assert fit.objective == pytest.approx(direct, rel=1e-8)
    p = Problem.of(t.N, t.D, t.loss)
    from ditlaws.laws.parametric import neg_log_likelihood

    for scale in (0.97, 1.03):  # it is a minimum in sigma ...
        assert neg_log_likelihood(fit.theta, p, fit.sigma * scale) > fit.neg_log_likelihood
    for i in range(5):  # ... and in every parameter
        for step in (-1e-3, 1e-3):
            theta = fit.theta.copy()
            theta[i] += step
            assert neg_log_likelihood(theta, p, fit.sigma) > fit.neg_log_likelihood - 1e-9


def test_batched_refits_reach_the_full_optimiser_and_resample_consistently():
    t = nd_grid_table(CHINCHILLA, np.random.default_rng(2), NS, DS, noise_rel=3e-3)
    p = Problem.of(t.N, t.D, t.loss)
    for estimator in ("huber", "mle"):
        fit = fit_parametric(t.N, t.D, t.loss, estimator=estimator)
        again = refit(fit.theta + 0.02, p, np.ones((1, len(t))), estimator=estimator)[0]
        np.testing.assert_allclose(again, fit.theta, atol=2e-5)
        draws = refit(fit.theta, p, resample_weights(len(t), 300, np.random.default_rng(0)), estimator=estimator)
        assert np.isfinite(draws).all()
        lo, hi = np.percentile(draws, [5, 95], axis=0)
        assert np.all((lo <= fit.theta) & (fit.theta <= hi))


def test_a_parameter_that_never_moved_or_sits_on_a_bound_is_flagged():
    t = isoflop_table(paper_truth(), np.random.default_rng(0), 3e-4)  # the truth has E = 0
    p = Problem.of(t.N, t.D, t.loss)
    start = np.array([5.0, 10.0, 0.0, 1.5, 0.5])
    flags, messages = fit_flags(np.array([5.0, 11.0, -0.3, 1.5, 0.4]), start, p)
    assert flags == ["ln_A_at_start", "alpha_at_start"] and "never moved" in messages[0]
    flags, messages = fit_flags(np.array([1.0, 2.0, p.lower[2], 0.3, EXPONENT_MAX]), start, p)
    assert flags == ["ln_E_at_bound", "beta_at_bound"] and "no irreducible loss" in messages[0]
    fit = fit_parametric(t.N, t.D, t.loss)
    assert fit.E < 1e-3 * t.loss.min()  # no floor in the data: E goes (nearly) to zero, the truth's 0


def _inside(value, interval, rel=1e-6):
    lo, hi = interval
    return lo * (1 - rel) - rel <= value <= hi * (1 + rel) + rel


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_point_estimate_lies_inside_its_interval(seed):
    truth = ParametricLoss(E=0.3, A=2.0, B=5.0, alpha=0.3, beta=0.35)
    t = isoflop_table(truth, np.random.default_rng(seed), 2e-3, budgets=(1e15, 3e15, 1e16, 3e16, 1e17),
                      depths=range(1, 12))
    doc = fit_document(t, FitOptions(n_boot=300, holdout=1), targets=[1e18], seed=seed)
    a3 = doc["approach3"]
    point = {**a3["params"], "exponent_N_opt": a3["exponents"]["N_opt"], "exponent_D_opt": a3["exponents"]["D_opt"]}
    for name, value in point.items():
        assert _inside(value, a3["summary"][name]["ci90"]), (name, value, a3["summary"][name]["ci90"])
    assert not [f for f in a3["flags"] if f.startswith("point_outside")]
    for name, law in doc["approach2"]["laws"].items():
        for param, value in law["params"].items():
            if not (law["form"] == "floor" and law["flags"]):  # a floor fit on its constraint: E = 0 exactly
                assert _inside(value, law["summary"][param]["ci90"], rel=1e-3), (name, param)
    for p in doc["predictions"]:
        for approach in ("approach2", "approach3"):
            for name, q in p[approach].items():
                assert _inside(q["value"], q["ci90_noise"], rel=1e-3), (approach, name, q)
                assert q["ci90"] is None or _inside(q["value"], q["ci90"])


def test_noise_bootstrap_of_approach3_centres_on_its_own_fit():
    t = nd_grid_table(CHINCHILLA, np.random.default_rng(3), NS, DS, noise_rel=3e-3)
    doc = fit_document(t, FitOptions(n_boot=200, parametric_bootstrap_method="noise", holdout=0), targets=[1e24])
    a3 = doc["approach3"]
    assert a3["bootstrap"]["method"] == "noise"
    for name in ("E", "alpha", "beta"):
        assert _inside(a3["params"][name], a3["summary"][name]["ci90"])
    draws = forms.decode_draws(a3["draws"])
    assert draws.shape == (200, 5) and np.isfinite(draws).all()
