"""The prediction API over fit.json: equal to the fit's own numbers, intervals by the documented arithmetic."""

import json

import numpy as np
import pytest

from ditlaws.errors import UserError
from ditlaws.laws import forms
from ditlaws.laws.document import fit_document
from ditlaws.laws.extrapolation import phi
from ditlaws.laws.predict import SCHEMA_VERSION, load_fit
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import PAPER_LAWS, isoflop_table, paper_truth


@pytest.fixture(scope="module")
def doc():
    table = isoflop_table(paper_truth(), np.random.default_rng(0), 3e-4, fid_law=PAPER_LAWS["FID"])
    return fit_document(table, FitOptions(n_boot=200, parametric_boot=100, holdout=1), targets=[1.5e21, 1e19])


def _law(point, s=0.1, draws=None, transform="identity"):
    draws = np.tile(point, (50, 1)) if draws is None else draws
    return {"form": "power", "quantity": "N_opt", "transform": transform,
            "params": dict(zip(forms.POWER_PARAMS, point)),
            "draws": forms.encode_draws(draws, forms.POWER_PARAMS), "C_max": 1e18,
            "error_model": {"status": "ok", "s": s, "s_grid": [s], "weights": [1.0], "design_lnC": DESIGN}}


DESIGN = [float(np.log(c)) for c in (1e16, 1e17, 1e18)]
Z90, Z95 = 1.6448536269514722, 1.959963984540054


def _doc(laws):
    return {"schema_version": SCHEMA_VERSION, "study": "toy", "C_max": 1e18, "C_min": 1e16,
            "approach2": {"status": "fitted", "laws": laws, "budgets": []}, "approach3": {"status": "skipped"},
            "headline": {}, "predictions": [], "backtest": []}


def test_intervals_follow_the_documented_arithmetic():
    point = np.array([np.log(2.0), 0.5])
    fit = load_fit(_doc({"N_opt": _law(point)}))
    p = fit.predict(1e20)["approach2"]["N_opt"]
    value = 2.0 * 1e20**0.5
    assert p["value"] == pytest.approx(value, rel=1e-12)
    # All draws equal the point (no noise) and the posterior of s is a point mass: each side is z·s·|phi|.
    f = abs(float(phi(DESIGN, np.log(1e20))))
    assert p["ci90_noise"] == pytest.approx([value, value], rel=1e-6)
    assert p["ci90"] == pytest.approx([value * np.exp(-Z90 * 0.1 * f), value * np.exp(Z90 * 0.1 * f)], rel=1e-6)
    assert p["ci95"] == pytest.approx([value * np.exp(-Z95 * 0.1 * f), value * np.exp(Z95 * 0.1 * f)], rel=1e-6)
    assert fit.predict(1e21)["warnings"] and not fit.predict(1e19)["warnings"]  # beyond 100x the largest budget
    none = _law(point)
    none["error_model"] = {"status": "none", "note": "too few budgets"}
    q = load_fit(_doc({"N_opt": none})).predict(1e20)["approach2"]["N_opt"]
    assert q["ci90"] is None and "too few budgets" in q["notes"][0]


def test_noise_and_misfit_add_in_quadrature_in_log_space():
    rng = np.random.default_rng(0)
    point = np.array([0.0, 0.3])
    draws = point + np.stack([0.05 * rng.standard_normal(4000), np.zeros(4000)], 1)
    p = load_fit(_doc({"N_opt": _law(point, s=0.2, draws=draws)})).predict(1e19)["approach2"]["N_opt"]
    lp = np.log(p["value"])
    spread = Z90 * 0.2 * abs(float(phi(DESIGN, np.log(1e19))))
    assert np.log(p["ci90"][1]) - lp == pytest.approx(np.hypot(np.log(p["ci90_noise"][1]) - lp, spread), rel=1e-6)
    assert lp - np.log(p["ci90"][0]) == pytest.approx(np.hypot(lp - np.log(p["ci90_noise"][0]), spread), rel=1e-6)


def test_higher_is_better_metrics_come_back_in_their_units():
    point = np.array([np.log(0.5), -0.1])  # error 1 - accuracy = 0.5·C^-0.1
    law = _law(point, transform="one_minus")
    law["quantity"] = "accuracy"
    p = load_fit(_doc({"accuracy": law})).predict(1e20)["approach2"]["accuracy"]
    err = 0.5 * 1e20**-0.1
    assert p["value"] == pytest.approx(1 - err)
    assert p["ci90"][0] < p["value"] < p["ci90"][1] < 1


def test_load_fit_reproduces_the_fits_own_predictions(doc, tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(doc))
    fit = load_fit(path)
    for stored in doc["predictions"]:
        assert json.dumps(fit.predict(stored["C"])) == json.dumps(stored)
    p = fit.predict(1.5e21)
    assert p["headline"]["L_opt"][0] == "approach2"
    assert {"N_opt", "D_opt", "L_opt", "L_opt_floor", "FID"} <= p["approach2"].keys()
    assert {"N_opt", "D_opt", "L_opt"} <= p["approach3"].keys()
    for approach in ("approach2", "approach3"):
        for q in p[approach].values():
            assert q["ci90"][0] <= q["value"] <= q["ci90"][1]
            assert q["ci90"][0] <= q["ci90_noise"][0] and q["ci90_noise"][1] <= q["ci90"][1]


def test_accessors_for_the_space(doc):
    fit = load_fit(doc)
    curves = fit.isoflop_curves()
    assert len(curves) == 6 and all(c["used"] and len(c["curve"]["N"]) == 100 for c in curves)
    assert min(curves[0]["curve"]["loss"]) == pytest.approx(curves[0]["optimum"]["L"], rel=1e-4)
    grid = np.geomspace(1e17, 1e21, 7)
    band = fit.law_curve("N_opt", grid)
    assert band["value"].shape == (7,) and band["ci90"].shape == (7, 2) and len(band["points"]["C"]) == 6
    assert np.all(band["ci90"][:, 0] <= band["value"]) and np.all(band["value"] <= band["ci90"][:, 1])
    rows = fit.backtest_points()
    assert {r["quantity"] for r in rows} >= {"N_opt", "L_opt"} and {r["approach"] for r in rows} == \
        {"approach2", "approach3"}
    assert all(r["covered"] == (None if r["ci90"] is None else r["ci90"][0] <= r["actual"] <= r["ci90"][1])
               for r in rows)  # covered: of the interval with extrapolation error, null without one
    runs = fit.runs_vs_approach3()
    assert len(runs) == 84 and abs(runs[0]["predicted"] / runs[0]["loss"] - 1) < 0.01
    (row,) = fit.exponents()
    lo, hi = row["approach2"]["N_opt"]["ci90"]
    assert lo < PAPER_LAWS["N_opt"][1] < hi


def test_bad_fit_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "fit.json"
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(UserError, match="not UTF-8"):
        load_fit(bad)
    bad.write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        load_fit(bad)
    with pytest.raises(UserError, match="schema_version"):
        load_fit({"schema_version": 1, "study": "x"})
    with pytest.raises(UserError, match="no such fit.json"):
        load_fit(tmp_path / "nope.json")
    with pytest.raises(UserError, match="finite"):
        load_fit(_doc({})).predict(float("inf"))
