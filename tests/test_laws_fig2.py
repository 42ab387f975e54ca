"""fig2 (backtest) draws what fit.json holds: every loss law that was backtested, the headline one marked, each
approach and law in its own colour and marker, and noise-only bars said so where there is no extrapolation model."""

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
from fit_helpers import demo_fit  # noqa: E402

from ditlaws.laws import plots  # noqa: E402
from ditlaws.laws.predict import load_fit  # noqa: E402


def _figure(doc, tmp_path, monkeypatch):
    captured = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: captured.setdefault("fig", fig))
    monkeypatch.setattr(plots.plt, "close", lambda fig: None)
    assert plots.backtest_figure(load_fit(doc), tmp_path / "fig2.png") is not None
    return captured["fig"]


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.fixture(scope="module")
def doc():
    return demo_fit(holdout=2)


def test_the_loss_panel_shows_every_backtested_loss_law_and_marks_the_headline(doc, tmp_path, monkeypatch):
    rows = [(bt["approach"], name) for bt in doc["backtest"] for name in bt["quantities"]]
    assert ("approach2", "L_opt_floor") in rows  # the fixture has the floor law, or this test proves nothing
    n_panel, l_panel = _figure(doc, tmp_path, monkeypatch).axes[:2]
    labels = _legend(l_panel)
    head_approach, head_law = doc["headline"]["L_opt"]
    marked = [label for label in labels if "[headline]" in label]
    assert len(marked) == 1
    expected_name = {"L_opt": "pure law", "L_opt_floor": "floor law"}[head_law] if head_approach == "approach2" else ""
    assert expected_name in marked[0] and ("Approach 2" if head_approach == "approach2" else "Approach 3") in marked[0]
    assert any("floor law" in label for label in labels) and any("pure law" in label for label in labels)
    assert any(label.startswith("Approach 3") for label in labels)
    assert not any("law" in label for label in _legend(n_panel))  # N_opt has one law per approach
    markers = {h.get_marker() for h in l_panel.get_legend().legend_handles if h.get_marker() not in (None, "None")}
    assert len(markers) == 3  # pure, floor, Approach 3: distinct markers


def test_noise_only_bars_are_said_to_be_noise_only(doc, tmp_path, monkeypatch):
    stripped = {**doc, "backtest": [{**bt, "quantities": {name: {**q, "ci90": None} for name, q in
                                                           bt["quantities"].items()}} for bt in doc["backtest"]]}
    fig = _figure(stripped, tmp_path, monkeypatch)
    for ax in fig.axes[:2]:
        labels = _legend(ax)
        assert labels and not any("with extrapolation error" in label for label in labels)
        assert any("run noise only (no extrapolation model)" in label for label in labels)
