"""FID above its measured real-vs-real floor (``FID_floor``: FID = F + A·C^-alpha with F measured, not fitted): the
solver recovers a known law, a study whose FID approaches its floor gets that law as its headline FID law (chosen,
like the loss law, by the nested backtests), and the report, the predictions and the Space follow the headline."""

import json

import numpy as np
import pytest
from fit_helpers import FID_EXCESS_EXPONENT, demo_table

from ditlaws.laws import forms
from ditlaws.laws.document import fit_document
from ditlaws.laws.powerlaw import fit_floor
from ditlaws.laws.predict import load_fit
from ditlaws.laws.report import write_report
from ditlaws.laws.study import FitOptions
from ditlaws.space.whatif import what_if

FLOOR, EXCESS = 1500.0, 3000.0
BUDGETS = tuple(np.geomspace(1e17, 3e19, 8))
TARGET = 3e20


def true_fid(C):
    return FLOOR + EXCESS * (np.asarray(C) / 1e17) ** -FID_EXCESS_EXPONENT


def test_the_fixed_floor_solver_recovers_a_known_law():
    C = np.geomspace(1e10, 1e13, 7)
    y = 500.0 + 3e8 * C**-0.6
    E, ln_a, alpha = fit_floor(C, y[None, :], E=500.0)[0]
    assert E == 500.0 and ln_a == pytest.approx(np.log(3e8), rel=1e-5) and alpha == pytest.approx(0.6, rel=1e-5)
    # a bootstrap draw whose values dip under the floor still gives a law that never goes below it
    below = np.where(np.arange(7) >= 5, 480.0, y)
    draw = fit_floor(C, below[None, :], E=500.0)
    assert np.all(np.isfinite(draw)) and np.all(forms.floor(draw, C) >= 500.0)
    # two parameters need three points; the free floor needs four
    assert np.isnan(fit_floor(C[:2], y[None, :2], E=500.0)).all()
    assert np.isnan(fit_floor(C[:3], y[None, :3])).all() and np.isfinite(fit_floor(C[:3], y[None, :3], E=500.0)).all()


@pytest.fixture(scope="module")
def doc():
    table = demo_table(budgets=BUDGETS, fid_floor=FLOOR, fid_excess=EXCESS, accuracy=False)
    return fit_document(table, FitOptions(n_boot=100, parametric=False, holdout=2), targets=[TARGET])


def test_a_study_near_its_floor_leads_with_the_floor_law(doc):
    laws = doc["approach2"]["laws"]
    law = laws["FID_floor"]
    assert law["fixed_floor"] == FLOOR and law["params"]["E"] == FLOOR and law["form"] == "floor"
    lo, hi = law["summary"]["alpha"]["ci90"]
    assert lo <= FID_EXCESS_EXPONENT <= hi
    assert doc["headline"]["FID"] == ["approach2", "FID_floor"]
    rms = doc["approach2"]["fid_choice"]["backtest_rms"]
    assert rms["FID_floor"] < rms["FID"]
    p = doc["predictions"][0]["approach2"]
    head, pure = p["FID_floor"], p["FID"]
    assert head["headline"] and not pure["headline"]
    assert head["value"] >= FLOOR and head["ci90"][0] <= true_fid(TARGET) <= head["ci90"][1]
    assert abs(np.log(head["value"] / true_fid(TARGET))) < abs(np.log(pure["value"] / true_fid(TARGET)))


def test_the_choice_counts_the_pure_law_clipped_at_the_floor(doc):
    """Predictions never go below the floor, so the pure law is judged by what it would have predicted."""
    pure = doc["approach2"]["laws"]["FID"]
    actual = dict(zip(pure["fitted_on"]["C"], pure["fitted_on"]["value"]))
    pairs = pure["error_model"]["pairs"]
    assert any(p["error"] > np.log(actual[p["C"]] / FLOOR) for p in pairs)  # the law fell below the floor somewhere
    clipped = [min(p["error"], np.log(actual[p["C"]] / FLOOR)) for p in pairs]
    choice = doc["approach2"]["fid_choice"]
    assert choice["n_pairs"] == len(pairs)
    assert choice["backtest_rms"]["FID"] == pytest.approx(np.sqrt(np.mean(np.square(clipped))), rel=1e-9)


def test_its_backtests_cover_and_mark_the_headline(doc):
    rows = [bt["quantities"] for bt in doc["backtest"] if bt["approach"] == "approach2"]
    assert rows and all(q["FID_floor"]["covered"] for q in rows)
    assert all(q["FID_floor"]["headline"] and not q["FID"]["headline"] for q in rows)


def test_report_and_space_follow_the_headline_fid_law(doc, tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(doc))
    text = write_report(tmp_path / "report.md", path, {}).read_text()
    assert "Headline FID law: **FID_floor**" in text and "headline law `approach2.FID_floor`" in text
    fit = load_fit(path)
    answer = what_if(fit, TARGET)
    assert answer["FID"]["source"] == "approach2 FID_floor (headline)"
    assert answer["FID"]["value"] == fit.predict(TARGET)["approach2"]["FID_floor"]["value"]
    assert not any(w.startswith("FID:") for w in answer["warnings"])  # the pure law's clipping is not the answer


def test_no_floor_law_where_a_budget_lies_on_the_floor():
    """FID that dips to its floor (demo_table's default) leaves no excess to fit: the pure law stays."""
    doc = fit_document(demo_table(fid_floor=1900.0, accuracy=False), FitOptions(n_boot=50, parametric=False, holdout=0))
    assert "FID_floor" not in doc["approach2"]["laws"] and doc["headline"]["FID"] == ["approach2", "FID"]
    assert "no floor law" in doc["approach2"]["fid_choice"]["rule"]


def test_fig3_draws_both_fid_laws_in_one_panel(doc):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ditlaws.laws.plots import loss_metrics_plot

    fig = loss_metrics_plot(load_fit(doc))
    try:
        panels = [ax for ax in fig.axes if ax.get_visible()]
        assert len(panels) == 2  # the loss and FID: no panel of its own for the floor law
        labels = [line.get_label() for line in panels[1].get_lines()]
        assert any(lab.startswith("above the floor [headline]: 1500 + ") for lab in labels)
        assert any(lab.startswith("pure: ") for lab in labels)
        assert panels[1].get_title() == "FID (values: the headline law)"
    finally:
        plt.close(fig)
