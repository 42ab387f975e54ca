"""Accuracy is fitted on its odds (a straight line in logit(accuracy) against ln C): values and intervals stay
inside (0, 1) forwards and backwards, and figures draw it on [0, 1] from its first fitted budget on."""

import numpy as np
import pytest
from fit_helpers import demo_fit

from ditlaws.laws import forms
from ditlaws.laws.document import fit_document
from ditlaws.laws.metrics import BY_KEY, from_fitted
from ditlaws.laws.predict import SCHEMA_VERSION, load_fit
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import make_table, paper_truth

A, B = -20.0, 0.5  # logit(accuracy) = A + B·ln C: accuracy 0.14 at 1e17, 0.98 at 1e21
BUDGETS = np.geomspace(1e17, 1e19, 6)


def _logistic(C):
    return 1 / (1 + np.exp(-(A + B * np.log(C))))


@pytest.fixture(scope="module")
def doc():
    """Runs whose accuracy is the same at every size of a budget: its value at the optimum is exactly the truth."""
    truth = paper_truth()
    rng = np.random.default_rng(0)
    Bs, S = (a.ravel() for a in np.meshgrid(BUDGETS, [0.25, 0.5, 1, 2, 4], indexing="ij"))
    N = truth.optimal(Bs)[0] * S
    D = Bs / (6 * N)
    loss = truth(N, D) * np.exp(3e-4 * rng.standard_normal(len(N)))
    table = make_table(N, D, loss, budget=Bs, metrics={"accuracy": _logistic(6 * N * D)})
    return fit_document(table, FitOptions(n_boot=100, parametric=False, holdout=1), targets=[1e21, 1e15])


def test_logit_law_recovers_known_parameters(doc):
    law = doc["approach2"]["laws"]["accuracy"]
    assert law["transform"] == "odds" and law["fitted"] == "accuracy / (1 - accuracy)"
    assert law["exponent"] == pytest.approx(B, rel=1e-6) and np.log(law["coef"]) == pytest.approx(A, abs=1e-4)
    np.testing.assert_allclose(law["fitted_on"]["value"], _logistic(np.array(law["fitted_on"]["C"])), rtol=1e-6)
    for p in doc["predictions"]:
        q = p["approach2"]["accuracy"]
        assert q["value"] == pytest.approx(_logistic(p["C"]), rel=1e-5)
        for key in ("ci90_noise", "ci95_noise", "ci90", "ci95"):
            if q[key] is not None:
                assert 0 < q[key][0] <= q["value"] <= q[key][1] < 1


def test_far_backwards_and_forwards_stay_inside_the_unit_interval(doc):
    fit = load_fit(doc)
    for C in (1e3, 1e10, 1e25, 1e30):
        q = fit.predict(C)["approach2"]["accuracy"]
        for key in ("value", "median"):
            assert 0 <= q[key] <= 1
        for key in ("ci90_noise", "ci90"):
            if q[key] is not None:
                assert 0 <= q[key][0] <= q[key][1] <= 1


def test_odds_round_trip():
    m = BY_KEY["accuracy"]
    acc = np.array([0.0, 1e-9, 0.3, 0.5, 0.9, 1 - 1e-9])
    np.testing.assert_allclose(m.from_fitted(m.to_fitted(acc)), acc, rtol=1e-9, atol=1e-15)
    assert m.to_fitted(1.0) == np.inf and from_fitted("odds", np.inf) == 1.0
    assert BY_KEY["fid"].to_fitted(3.0) == 3.0 and not BY_KEY["fid"].bounded


def test_an_earlier_one_minus_law_is_clipped_to_the_unit_interval():
    """fit.json files from before the odds law (accuracy as 1 - acc = k·C^d) still read, their intervals clipped."""
    point = np.array([np.log(0.9), 0.2])  # a rising error: 1 - acc > 1 beyond some C
    draws = point + np.stack([0.3 * np.random.default_rng(0).standard_normal(200), np.zeros(200)], 1)
    law = {"form": "power", "quantity": "accuracy", "transform": "one_minus",
           "params": dict(zip(forms.POWER_PARAMS, point)), "draws": forms.encode_draws(draws, forms.POWER_PARAMS),
           "C_max": 1e18, "error_model": {"status": "none", "note": "too few budgets"}}
    doc = {"schema_version": SCHEMA_VERSION, "study": "old", "C_max": 1e18, "C_min": 1e16,
           "approach2": {"status": "fitted", "laws": {"accuracy": law}, "budgets": []},
           "approach3": {"status": "skipped"}, "headline": {}, "predictions": [], "backtest": []}
    q = load_fit(doc).predict(1e17)["approach2"]["accuracy"]
    assert 0 <= q["ci90_noise"][0] <= q["ci90_noise"][1] <= 1


def test_figures_draw_accuracy_on_the_unit_interval_from_its_first_budget(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ditlaws.laws.plots import law_panel

    fit = load_fit(demo_fit())
    fig, ax = plt.subplots()
    law_panel(ax, fit, "accuracy_position")
    first = min(fit.laws()["accuracy_position"]["fitted_on"]["C"])
    xs = ax.lines[0].get_xdata()
    assert xs.min() == pytest.approx(first, rel=1e-12)  # the law is not drawn backwards past its data
    ys = ax.lines[0].get_ydata()
    assert ys.min() >= 0 and ys.max() <= 1
    lo, hi = ax.get_ylim()
    assert lo >= 0 and hi <= 1.02 and ax.get_yscale() == "linear"
    plt.close(fig)
