"""FID predictions never go below the real-vs-real floor of the runs' evaluations: clipped to it, the law's own
number kept, a note and a warning in fit.json, the report and the Space."""

import json

import numpy as np
import pytest
from fit_helpers import demo_fit, demo_table

from ditlaws.laws.document import fit_document
from ditlaws.laws.predict import load_fit
from ditlaws.laws.report import write_report
from ditlaws.laws.study import FitOptions
from ditlaws.laws.table import load_runs
from ditlaws.space.whatif import readout, what_if
from ditlaws.store import LocalStore

TARGETS = (3e17, 1e22)


@pytest.fixture(scope="module")
def docs():
    return demo_fit(targets=TARGETS, fid_floor=1900.0), demo_fit(targets=TARGETS, fid_floor=None)


def test_below_the_floor_is_clipped_and_said(docs):
    floored, free = docs
    assert floored["fid_floor"]["value"] == 1900.0 and floored["fid_floor"]["n_runs"] == 25
    assert free["fid_floor"] is None
    for with_floor, without in zip(floored["predictions"], free["predictions"]):
        q, law = with_floor["approach2"]["FID"], without["approach2"]["FID"]
        assert q["law_value"] == law["value"] == law["law_value"]  # the law itself is the same fit
        if law["value"] < 1900:
            assert q["value"] == 1900 and q["floor"] == 1900
            assert all(v >= 1900 for key in ("ci90_noise", "ci90") for v in q[key])
            assert any("below the real-vs-real floor 1900" in n for n in q["notes"])
            assert any(w.startswith("FID: the law gives FID") for w in with_floor["warnings"])
            assert with_floor["fid_from_loss"]["value"] >= 1900
        else:
            assert q["value"] == law["value"] and q["ci90"] == law["ci90"] and not q["notes"]
    assert any(p["approach2"]["FID"]["law_value"] < 1900 for p in free["predictions"])  # the case is exercised
    assert any(p["approach2"]["FID"]["law_value"] > 1900 for p in free["predictions"])


def test_the_curve_the_figures_draw_is_clipped_too(docs):
    fit = load_fit(docs[0])
    grid = np.geomspace(1e17, 1e23, 50)
    q = fit.law_curve("FID", grid)
    assert q["value"].min() == 1900 and (q["law_value"] < 1900).any()
    assert (q["ci90_noise"] >= 1900).all()


def test_report_and_space_say_so(docs, tmp_path):
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(docs[0]))
    text = write_report(tmp_path / "report.md", path, {}).read_text()
    assert "at its real-vs-real floor" in text or "FID: the law gives FID" in text
    assert text.count("below the real-vs-real floor 1900") >= 2
    fit = load_fit(path)
    far = what_if(fit, 1e22)
    assert far["FID"]["value"] == 1900 and "at the real-vs-real floor" in readout(far["FID"])
    assert any("real-vs-real floor" in w for w in far["warnings"])


def test_the_floor_reaches_the_fit_from_run_records(tmp_path):
    """eval.fid_floor in the run records (as evaluate --store writes them) becomes the fit's floor."""
    table = demo_table()
    store = LocalStore(tmp_path / "store")
    floors = 1900.0 + np.arange(len(table.N))
    for i in range(len(table.N)):
        record = {"run_id": f"r{i}", "study": "demo", "N": table.N[i], "D": table.D[i], "budget": table.nominal[i],
                  "eval": {"val_loss": {"mean": table.loss[i], "sem": 1e-4}, "fid": table.metrics["fid"][i],
                           "fid_floor": floors[i]}}
        store.put_run(json.loads(json.dumps(record, default=float)))
    loaded = load_runs(tmp_path / "store")
    np.testing.assert_array_equal(np.sort(loaded.metrics["fid_floor"]), floors)
    doc = fit_document(loaded, FitOptions(n_boot=50, parametric=False, holdout=0), targets=[1e22])
    assert doc["fid_floor"]["value"] == 1900.0 and doc["fid_floor"]["max"] == floors.max()


def test_backtest_predictions_are_clipped_like_predictions(docs):
    floored, free = docs
    rows = lambda doc: [bt["quantities"]["FID"] for bt in doc["backtest"] if "FID" in bt["quantities"]]  # noqa: E731
    pairs = list(zip(rows(floored), rows(free)))
    assert pairs
    for q, law in pairs:
        assert q["law_value"] == law["predicted"]  # the same law, refitted on the same smaller budgets
        assert q["predicted"] == max(law["predicted"], 1900.0)
        assert all(v >= 1900 for key in ("ci90_noise", "ci90") if q[key] for v in q[key])
        assert any("below the real-vs-real floor 1900" in n for n in q["notes"]) == (law["predicted"] < 1900)
