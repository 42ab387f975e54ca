"""The Space in a real headless Chromium: a Space folder as `ditlaws space deploy` stages it (app.py, fit.json,
presets.json, the library as ditlaws/) served by `python app.py` on 127.0.0.1 as the Hub runs it (no arguments, no
PYTHONPATH, no torch); a budget typed into the page, the displayed N_opt and loss equal to
load_fit(fit.json).predict(C); a screenshot that shows the predicted-vs-actual plot; and gradio_client's what-if
call returning the same numbers.

Without chromium this skips (apt-get install -y chromium); DITLAWS_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from ditlaws.laws.predict import load_fit
from ditlaws.space import browser, figures
from ditlaws.space.deploy import stage
from ditlaws.space.example import example_fit, example_records
from ditlaws.space.presets import nearest_preset, presets_from_records

BUDGET = 3e20
FLOAT = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def _require_browser():
    missing = None
    if browser.find_chromium() is None:
        missing = "chromium is not installed (apt-get update && apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright (Python) is not installed"
    if missing:
        if os.environ.get("DITLAWS_REQUIRE_BROWSER") == "1":
            pytest.fail(f"DITLAWS_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(f"{missing}; set DITLAWS_REQUIRE_BROWSER=1 to make this a failure")


@pytest.fixture(scope="module")
def chromium():
    """Checked before the app starts, so a machine without chromium skips at once."""
    _require_browser()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A staged Space of the two-study example fit with its preset table, served as a child process."""
    inputs, space = tmp_path_factory.mktemp("inputs"), tmp_path_factory.mktemp("space")
    doc = example_fit()
    (inputs / "fit.json").write_text(json.dumps(doc))
    presets = presets_from_records(example_records(doc))
    (inputs / "presets.json").write_text(json.dumps(presets))
    stage(space, fit=inputs / "fit.json", presets=inputs / "presets.json")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("DITLAWS_")}
    with browser.served_app([], app=space / "app.py", cwd=space, env=env) as app:
        yield {"url": app.url, "app": app, "fit": load_fit(inputs / "fit.json"), "presets": presets}


def _first_number(text: str) -> float:
    return float(FLOAT.search(text).group())


def test_typed_budget_shows_the_fits_numbers_and_the_plot(chromium, served, tmp_path):
    fit, p = served["fit"], served["fit"].predict(BUDGET)
    with browser.chromium_page(1280, 900) as page:
        browser.open_app(page, served["url"])
        browser.ask_budget(page, "3e20")
        n_opt = _first_number(browser.read_box(page, "n_opt"))
        loss = _first_number(browser.read_box(page, "loss"))
        preset = browser.read_box(page, "preset")
        hours = float(page.locator("#gpu_hours input").first.input_value())
        browser.wait_for_plot(page, "pva_plot")
        shot = tmp_path / "space.png"
        page.screenshot(path=str(shot), full_page=True)
        box = page.locator("#pva_plot img").first.bounding_box()
        natural = page.eval_on_selector("#pva_plot img", "i => [i.naturalWidth, i.naturalHeight]")
        title = page.title()

    assert n_opt == pytest.approx(p["approach2"]["N_opt"]["value"], rel=1e-3)
    approach, name = p["headline"]["L_opt"]
    assert loss == pytest.approx(p[approach][name]["value"], rel=1e-3)
    best = nearest_preset(served["presets"]["presets"], p["approach2"]["N_opt"]["value"])
    assert preset.startswith(f"depth {best['depth']}, width {best['width']}, heads {best['heads']}")
    assert hours == pytest.approx(BUDGET / (3600 * 989e12 * 0.4), rel=1e-5)  # H100 at MFU 0.4, the defaults
    assert title == f"ditlaws: {fit.study}"
    libraries = served["app"].loaded_libraries()  # the running Space never loaded torch (Linux: /proc/<pid>/maps)
    if libraries is not None:
        assert "numpy" in libraries and "libtorch" not in libraries  # numpy's extensions are mapped, torch's not

    # the plot arrived at the figure's own size, and the screenshot shows it (not blank) where the page put it
    fig = figures.predicted_vs_actual(fit)
    assert natural == [round(v) for v in fig.get_size_inches() * fig.dpi]
    image = Image.open(shot).convert("RGB")
    assert image.width == 1280 and image.height > 900
    crop = np.asarray(image.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]),
                                  int(box["y"] + box["height"]))), dtype=float)
    assert crop.shape[0] > 300 and crop.shape[1] > 500
    ink = (crop.min(axis=2) < 200).mean()  # pixels that are not (near) white: axes, text, points, lines
    assert 0.02 < ink < 0.6 and crop.std() > 20
    blue = ((crop[..., 2] > 150) & (crop[..., 0] < 80)).sum()  # Approach 2's points and error bars (C0 blue)
    assert blue > 50


def test_gradio_client_what_if_returns_the_same_numbers(served):
    from gradio_client import Client

    client = Client(served["url"], verbose=False)
    out = client.predict("FLOPs", "3e20", 1.0, "NVIDIA H100 SXM", 989.0, 0.4, api_name="/what_if")
    numbers = out[0]
    p = served["fit"].predict(BUDGET)
    assert numbers["C"] == BUDGET
    assert json.dumps(numbers["prediction"]) == json.dumps(p)
    assert numbers["N_opt"]["value"] == p["approach2"]["N_opt"]["value"]
    assert numbers["loss"]["value"] == p[p["headline"]["L_opt"][0]][p["headline"]["L_opt"][1]]["value"]
    assert _first_number(out[3]) == pytest.approx(p["approach2"]["N_opt"]["value"], rel=1e-3)
    # GPU-hours in: the same budget expressed as 3e20 / (3600 · 989e12 · 0.4) hours gives the same answer
    hours = BUDGET / (3600 * 989e12 * 0.4)
    again = client.predict("GPU-hours", "", hours, "NVIDIA H100 SXM", 989.0, 0.4, api_name="/what_if")[0]
    assert again["C"] == pytest.approx(BUDGET, rel=1e-12)
    assert again["N_opt"]["value"] == pytest.approx(p["approach2"]["N_opt"]["value"], rel=1e-9)
    far = client.predict("FLOPs", "1.5e21", 1.0, "NVIDIA H100 SXM", 989.0, 0.4, api_name="/what_if")[0]
    assert any("250x the largest fitted budget" in w for w in far["warnings"])
