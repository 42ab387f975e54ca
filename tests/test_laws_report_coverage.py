"""report.md says what it shows: coverage of the interval each backtest row is shown with (``covered`` with the
extrapolation error, ``covered_noise`` where the refit had no model of it), totals over what is shown, the budgets an
extrapolation-error model really needs, and the 100x warning for every predicted budget."""

import copy
import re

import numpy as np
import pytest
from fit_helpers import demo_fit, demo_table

from ditlaws.laws.approach2 import budgets_for_error_model
from ditlaws.laws.backtest import _measured_as_fitted
from ditlaws.laws.document import fit_document
from ditlaws.laws.metrics import BY_LAW
from ditlaws.laws.predict import shown_interval
from ditlaws.laws.report import section_backtest, section_predictions
from ditlaws.laws.study import FitOptions


@pytest.fixture(scope="module")
def doc():
    return demo_fit(targets=(1e22, 1e23))  # 5 budgets up to 1e19: both targets beyond 100x


def _rows(doc):
    return [q for bt in doc["backtest"] for q in bt["quantities"].values()]


def test_covered_is_null_without_an_extrapolation_interval(doc):
    rows = _rows(doc)
    assert any(q["ci90"] is None for q in rows) and any(q["ci90"] is not None for q in rows)
    for q in rows:
        assert (q["covered"] is None) == (q["ci90"] is None)
        assert q["covered_noise"] == (q["ci90_noise"][0] <= q["actual"] <= q["ci90_noise"][1])
        ci, covered, kind = shown_interval(q)
        assert (ci, covered) == ((q["ci90"], q["covered"]) if q["ci90"] else (q["ci90_noise"], q["covered_noise"]))


def _table(lines):
    return [line.split(" | ") for line in lines if line.startswith("| ") and line[2].isdigit()]


def test_noise_only_backtests_say_so_and_count_what_is_shown(doc):
    d = copy.deepcopy(doc)
    for q in _rows(d):  # as in the demo: no refit had an extrapolation-error model
        q["ci90"], q["covered"], q["ci90_measured"], q["covered_measured"] = None, None, None, None
    lines = section_backtest(d, {})
    header = next(line for line in lines if line.startswith("| held out"))
    assert "90 % noise only" in header and "with extrapolation" not in header
    rows = _table(lines)
    shown = [q["covered_noise"] for q in _rows(d)]
    assert [r[6] for r in rows] == ["yes" if c else "no" for c in shown]
    assert all(r[7].rstrip(" |") == "n/a" for r in rows)  # no interval with extrapolation error, none for a measurement
    assert f"Covered by the interval shown: {sum(shown)} of {len(shown)} (run noise only)." in lines


def test_mixed_backtests_mark_the_noise_only_rows_and_split_the_total(doc):
    lines = section_backtest(doc, {})
    assert "predicted [90 % interval]" in next(line for line in lines if line.startswith("| held out"))
    rows = _rows(doc)
    extra = [q["covered"] for q in rows if q["ci90"]]
    noise = [q["covered_noise"] for q in rows if not q["ci90"]]
    total = next(line for line in lines if line.startswith("Covered by the interval shown"))
    assert f"{sum(extra) + sum(noise)} of {len(rows)}" in total
    assert f"{sum(noise)} of {len(noise)} run noise only" in total
    assert f"{sum(extra)} of {len(extra)} with extrapolation error" in total
    assert sum("*noise only*" in r[3] for r in _table(lines)) == len(noise)


def test_each_row_shows_the_interval_for_a_measurement_and_the_total_counts_it(doc):
    """The actual value is a measurement: its row shows the wider interval a measurement should fall in, and whether
    it did, wherever fit.json has one; the total counts those."""
    lines = section_backtest(doc, {})
    rows = _table(lines)
    named = [(name, q) for bt in doc["backtest"] for name, q in bt["quantities"].items()]
    assert len(rows) == len(named) and any(name.startswith("accuracy") for name, _ in named)
    shown = []
    for r, (name, q) in zip(rows, named):
        cell = r[7].rstrip(" |")
        if q["ci90_measured"] is None:
            assert cell == "n/a"
            continue
        lo, hi = q["ci90_measured"]
        assert lo <= q["ci90"][0] and q["ci90"][1] <= hi  # a measurement's interval holds the law's
        if name.startswith("accuracy"):  # widened on the odds, as the law is fitted: it stays inside (0, 1)
            assert 0 < lo and hi < 1
        assert cell.endswith(" yes" if q["covered_measured"] else " no")
        assert q["covered_measured"] == (lo <= q["actual"] <= hi)
        shown.append(q["covered_measured"])
    assert shown and f"As measurements: {sum(shown)} of {len(shown)}." in next(
        line for line in lines if line.startswith("Covered by the interval shown"))


def test_an_accuracys_interval_for_a_measurement_stays_below_one():
    """Widened in accuracy's own units, 0.999 [0.99, 0.9999] measured as 0.998 [0.99, 0.9995] would reach 1.00075;
    on the odds, where its law is fitted, it stays inside (0, 1) and still holds the law's interval."""
    value, ci, actual, actual_ci = 0.999, [0.99, 0.9999], 0.998, [0.99, 0.9995]
    lo, hi = _measured_as_fitted(BY_LAW["accuracy"], value, ci, actual, actual_ci)
    assert 0 < lo <= ci[0] and ci[1] <= hi < 1
    assert _measured_as_fitted(None, value, ci, actual, actual_ci)[1] > 1  # what accuracy's own units would give
    fid = _measured_as_fitted(BY_LAW["FID"], 20.0, [18.0, 23.0], 21.0, [19.0, 24.0])
    assert fid == _measured_as_fitted(None, 20.0, [18.0, 23.0], 21.0, [19.0, 24.0])  # FID is fitted as it is


def test_every_predicted_budget_beyond_100x_carries_its_warning(doc):
    text = "\n".join(section_predictions(doc, {}))
    for C in (1e22, 1e23):
        c = re.escape(f"{C:.3g}")
        assert re.search(rf"\*\*C = {c}:\*\* C = {c} is \d+x the largest fitted budget", text)


@pytest.mark.parametrize("form, law", [("power", "N_opt"), ("floor", "L_opt_floor")])
def test_the_budgets_an_error_model_needs_is_what_it_says(form, law):
    """The note names the count; with one budget fewer there is no model, with that count there is one."""
    need = budgets_for_error_model(form)
    budgets = np.geomspace(1e17, 1e19, need)
    few = fit_document(demo_table(budgets=budgets[:-1], accuracy=False),
                       FitOptions(n_boot=50, parametric=False, holdout=0), targets=[1e20])
    em = few["approach2"]["laws"][law]["error_model"]
    assert em["status"] == "none" and f"at least {need} budgets" in em["note"]
    enough = fit_document(demo_table(budgets=budgets, accuracy=False),
                          FitOptions(n_boot=50, parametric=False, holdout=0), targets=[1e20])
    assert enough["approach2"]["laws"][law]["error_model"]["status"] == "ok"


def test_an_off_centre_held_out_budget_is_named_in_its_rows_and_the_report():
    from ditlaws.laws.synthetic import isoflop_table, paper_truth

    # Depths 2..11 over 1e17..1e19: the largest budget's optimum has one sampled size above it.
    table = isoflop_table(paper_truth(), np.random.default_rng(0), noise_rel=1e-3,
                          budgets=np.geomspace(1e17, 1e19, 6), depths=range(2, 12))
    d = fit_document(table, FitOptions(n_boot=50, parametric=False, holdout=2))
    last = max(d["approach2"]["budgets"], key=lambda b: b["budget"])
    assert "one_sided" in last["flags"] and last["used"]
    for bt in d["backtest"]:
        flagged = all(any("(one_sided)" in n for n in q["notes"]) for q in bt["quantities"].values())
        assert flagged == (bt["budget"] == last["budget"])
    lines = section_backtest(d, {})
    assert any(line.startswith(f"Held-out budget(s) {last['budget']:.3g}: the sizes barely extend") for line in lines)
