"""The Space on fit.json files that are legal but awkward, or broken: each renders, or gives one clear message.

The demo's own fit crashed the page (FID's measured interval lay one ulp above its value: a negative error bar);
fits without backtests, without Approach 2, with one budget, with intervals touching their values, with missing
quantities or a null C_max must render; NaN, a missing study name are refused with one line. The app with its
port in use exits 2 with one line. One adversarial file is also served and read in real Chromium.
"""

import copy
import json
import math
import os
import sys
from pathlib import Path

import pytest
from fit_helpers import demo_fit

from ditlaws.errors import UserError
from ditlaws.laws.predict import load_fit
from ditlaws.space import browser, figures, tables
from ditlaws.space.whatif import readout, what_if

APP_DIR = Path(__file__).resolve().parents[1] / "hub_cards" / "space"


@pytest.fixture(scope="module")
def doc():
    return demo_fit()


@pytest.fixture(scope="module")
def app():
    sys.path.insert(0, str(APP_DIR))
    try:
        import app as space_app
    finally:
        sys.path.remove(str(APP_DIR))
    return space_app


def _rows(d):
    return [q for bt in d["backtest"] for q in bt["quantities"].values()]


def _ulp(d):
    for q in _rows(d):  # the demo's FID: the measured interval's lower end one ulp above the measurement
        q["actual_ci90"] = [math.nextafter(q["actual"], math.inf), q["actual_ci90"][1]]
        q["ci90_noise"] = [q["ci90_noise"][0], math.nextafter(q["predicted"], -math.inf)]  # and one below
    return d


def _touching(d):
    for q in _rows(d):
        q["ci90_noise"] = q["actual_ci90"] = [q["predicted"], q["predicted"]]
        q["ci90"] = [q["predicted"], q["predicted"]] if q["ci90"] else None
    for p in d["predictions"]:
        for a in ("approach2", "approach3"):
            for q in p[a].values():
                q["ci90_noise"] = [q["value"], q["value"]]
    return d


def _missing(d):
    for bt in d["backtest"]:
        bt["quantities"] = {k: q for k, q in bt["quantities"].items() if k != "N_opt"}
        for q in bt["quantities"].values():
            for key in ("actual_ci90", "ci90_noise", "covered", "covered_noise", "rel_error"):
                q.pop(key)
    for name in ("N_opt", "FID", "accuracy"):
        del d["approach2"]["laws"][name]
    d.pop("loss_to_fid")
    d.pop("tokens_per_sample")
    return d


def _nulls(d):
    for q in _rows(d):
        q.update(predicted=None, actual_ci90=[None, None], ci90_noise=[None, None])
    for p in d["predictions"]:
        p["approach2"]["N_opt"]["ci90"] = [None, None]
    return d


def _no_approach2(d):
    d["approach2"] = {"status": "skipped", "reason": "Approach 2 skipped: 1 of 5 budget group(s) pass the checks"}
    d["backtest"], d["loss_to_fid"], d["headline"] = [], None, {"L_opt": ["approach3", "L_opt"]}
    return d


def _one_budget(d):
    d["approach2"] = {"status": "skipped", "reason": "one budget", "budgets": d["approach2"]["budgets"][:1]}
    d["approach3"] = {"status": "skipped", "reason": "too few runs"}
    d.update(backtest=[], predictions=[], headline={}, loss_to_fid=None)
    return d


def _c_max_null(d):
    d["C_max"] = d["C_min"] = None
    return d


RENDER = {"ulp": _ulp, "touching": _touching, "missing": _missing, "nulls": _nulls, "no_approach2": _no_approach2,
          "one_budget": _one_budget, "c_max_null": _c_max_null, "no_backtest": lambda d: {**d, "backtest": []}}


@pytest.mark.parametrize("case", sorted(RENDER))
def test_awkward_fits_render(case, doc, app, tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(RENDER[case](copy.deepcopy(doc)), allow_nan=False))
    demo = app.build_demo(path)  # every figure and table of the page, drawn
    assert demo is not None
    fit = load_fit(path)
    for row in tables.backtest(fit):
        assert row[7] in ("yes", "no", "—") and row[8].endswith(("yes", "no", "—"))
    answer = what_if(fit, 3e20)
    assert all(isinstance(readout(answer[k]), str) for k in ("N_opt", "D_opt", "loss", "FID"))


def test_error_bars_never_negative_for_the_demos_ulp_case(doc):
    """The exact crash of the issue: matplotlib refused xerr < 0 ('xerr' must not contain negative values)."""
    fig = figures.predicted_vs_actual(load_fit(_ulp(copy.deepcopy(doc))))
    assert fig.axes and fig.axes[0].has_data()
    assert figures._bar(1.0, [1.0 + 1e-16, 2.0]) == [[0.0], [1.0]]
    assert figures._bar(1.0, [0.5, 1.0 - 1e-16]) == [[0.5], [0.0]]
    assert figures._bar(1.0, None) == [[0.0], [0.0]]


def test_without_approach2_the_page_says_the_numbers_are_approach3s(doc, app):
    fit = load_fit(_no_approach2(copy.deepcopy(doc)))
    answer = what_if(fit, 3e20)
    assert answer["N_opt"]["source"].startswith("approach3")
    assert readout(answer["N_opt"]).endswith("(Approach 3)")
    assert any("come from Approach 3" in w and "1 of 5 budget group(s)" in w for w in answer["warnings"])
    assert "numbers below are Approach 3's" in app.summary_markdown(fit, "")


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["approach2"]["laws"]["N_opt"]["params"].update(exponent=float("nan")), "holds no NaN"),
    (lambda d: d.pop("study"), "has no 'study'"),
    (lambda d: d.update(C_max="big"), "'C_max' must be a number of FLOPs > 0 or null"),
])
def test_broken_fits_give_one_clear_message(edit, message, doc, app, tmp_path, capsys):
    d = copy.deepcopy(doc)
    edit(d)
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(d))  # NaN as the bare token Python's json writes (and reads) by default
    with pytest.raises(UserError, match=message):
        load_fit(path)
    assert app.main(["--fit", str(path), "--port", str(browser.free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.split("'")[0] in err and str(path) in err


def test_port_in_use_is_one_line_and_exit_2(doc, app, tmp_path, capsys):
    import socket

    path = tmp_path / "fit.json"
    path.write_text(json.dumps(doc))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert app.main(["--fit", str(path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--port {port}" in err and "in use" in err


def test_an_adversarial_fit_served_in_chromium(doc, tmp_path):
    """The demo's ulp case without Approach 2's laws on the backtest, served by `python app.py --fit` and read in
    a real browser: the page opens, the predicted-vs-actual plot arrives, the warnings say whose numbers these are."""
    from test_space_browser import _require_browser

    _require_browser()
    d = _ulp(copy.deepcopy(doc))
    d["approach2"] = {"status": "skipped", "reason": "Approach 2 skipped: too few budgets"}
    d["loss_to_fid"], d["headline"] = None, {"L_opt": ["approach3", "L_opt"]}
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(d))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    with browser.served_app(["--fit", str(path)], env=env) as served, browser.chromium_page(1280, 900) as page:
        browser.open_app(page, served.url)
        browser.wait_for_plot(page, "pva_plot")
        n_opt = browser.read_box(page, "n_opt")
        warnings = page.locator("#warnings").inner_text()
    assert n_opt.endswith("(Approach 3)")
    assert "come from Approach 3" in warnings and "too few budgets" in warnings


def test_an_approach3_headline_loss_is_no_fallback(doc):
    """With Approach 2 fitted and Approach 3's loss the fit's own headline, nothing is said to fall back."""
    d = copy.deepcopy(doc)
    d["headline"] = {"L_opt": ["approach3", "L_opt"]}
    answer = what_if(load_fit(d), 3e20)
    assert answer["loss"]["source"] == "approach3 L_opt (headline)"
    assert not any("come from Approach 3" in w for w in answer["warnings"])
