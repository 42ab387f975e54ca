"""The Space's numbers: the what-if answer is the prediction API's, the compute conversion, presets, tables."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

from ditlaws.errors import UserError
from ditlaws.laws.predict import load_fit
from ditlaws.space import compute, tables
from ditlaws.space.example import GEOMETRY, TOKENS_PER_SAMPLE, example_fit, example_records
from ditlaws.space.presets import geometry, nearest_preset, preset_table
from ditlaws.space.whatif import readout, what_if

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fit():
    return load_fit(example_fit())


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("space_app", ROOT / "hub_cards" / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_what_if_reads_every_number_from_predict(fit):
    C = 3e20
    p = fit.predict(C)
    a = what_if(fit, C)
    assert json.dumps(a["prediction"]) == json.dumps(p)
    assert a["N_opt"]["value"] == p["approach2"]["N_opt"]["value"]
    assert a["N_opt"]["ci90"] == p["approach2"]["N_opt"]["ci90"] is not None  # with extrapolation error
    assert a["D_opt"]["value"] == p["approach2"]["D_opt"]["value"]
    approach, name = p["headline"]["L_opt"]
    assert a["loss"]["value"] == p[approach][name]["value"] and "headline" in a["loss"]["source"]
    assert a["FID"]["value"] == p["approach2"]["FID"]["value"]
    assert a["images"]["value"] == pytest.approx(p["approach2"]["D_opt"]["value"] / TOKENS_PER_SAMPLE, rel=1e-12)
    assert a["images"]["ci90"] == pytest.approx([v / TOKENS_PER_SAMPLE for v in p["approach2"]["D_opt"]["ci90"]])
    assert not a["warnings"]  # 100x the largest budget (6e18) is the limit; 3e20 is 50x
    far = what_if(fit, 1e21)
    assert far["warnings"] == fit.predict(1e21)["warnings"] and "167x the largest fitted budget" in far["warnings"][0]


def test_readout_shows_four_significant_digits_first(fit):
    a = what_if(fit, 1e19)
    shown = float(readout(a["N_opt"]).split()[0])
    assert shown == pytest.approx(a["N_opt"]["value"], rel=1e-3)
    assert "extrapolation error" in readout(a["N_opt"])
    assert readout(None).startswith("—")


def test_study_without_tokens_per_sample_gives_no_image_count(fit):
    doc = example_fit()
    doc["tokens_per_sample"] = None
    assert what_if(load_fit(doc), 1e19)["images"] is None


def test_gpu_hours_and_flops_convert_both_ways():
    peak = compute.peak_flops("NVIDIA H100 SXM")
    assert peak == 989e12
    flops = compute.gpu_hours_to_flops(1000, peak, 0.4)
    assert flops == pytest.approx(1000 * 3600 * 989e12 * 0.4)
    assert compute.flops_to_gpu_hours(flops, peak, 0.4) == pytest.approx(1000)
    assert compute.peak_flops("anything", custom_tflops=100) == 1e14
    assert compute.parse_flops(" 1.5E+21 ") == 1.5e21 and compute.parse_flops("2,000,000") == 2e6
    for bad in ("", "lots", "-1", "nan", "inf", "0"):
        with pytest.raises(UserError, match="budget"):
            compute.parse_flops(bad)
    with pytest.raises(UserError, match="MFU"):
        compute.gpu_hours_to_flops(10, peak, 1.5)
    with pytest.raises(UserError, match="accelerator 'TPU v9' is unknown"):
        compute.peak_flops("TPU v9")


def test_presets_match_the_models_parameter_count():
    from ditlaws.models import build_model

    records = example_records(example_fit())
    geom = geometry(records)
    assert geom == {"family": "in_context", **GEOMETRY}
    table = preset_table(geom, depths=(1, 2, 3, 20))
    assert [p["width"] for p in table] == [64, 128, 192, 1280] and [p["heads"] for p in table] == [1, 2, 3, 20]
    cfg = {k: v for k, v in GEOMETRY.items()}
    model = build_model("in_context", depth=2, **cfg)
    assert table[1]["N"] == model.parameter_counts()["total"]
    best = nearest_preset(table, 1.1 * table[2]["N"])
    assert best["depth"] == 3 and best["ratio"] == pytest.approx(1 / 1.1)
    assert nearest_preset(table, 1e15)["at_edge"] and nearest_preset(None, 1e9) is None
    # records that disagree on geometry (or carry none) give no table rather than a wrong one
    mixed = records[:2] + [{**records[2], "model_config": {**records[2]["model_config"], "text_len": 10}}]
    assert geometry(mixed) is None and geometry([{"family": "in_context"}]) is None and geometry([]) is None


def test_tables_carry_error_and_coverage(fit):
    rows = tables.backtest(fit)
    points = fit.backtest_points()
    assert len(rows) == len(points)
    for row, r in zip(rows, points):
        assert row[7] == ("yes" if (r["covered"] if r["ci90"] else r["covered_noise"]) else "no")
        assert float(row[6]) == pytest.approx(100 * r["rel_error"], abs=0.006)
        measured = r.get("ci90_measured")
        assert row[8] == ("—" if not measured else
                          f"[{measured[0]:.4g}, {measured[1]:.4g}] {'yes' if r['covered_measured'] else 'no'}")
    assert len(tables.BACKTEST_HEADERS) == len(rows[0]) and any(row[8] != "—" for row in rows)
    # without an extrapolation-error model (ci90 None) the row shows the run-noise interval and its coverage
    doc = example_fit()
    q = doc["backtest"][0]["quantities"]["N_opt"]
    q.update(ci90=None, covered=False, covered_noise=True)
    row = next(r for r in tables.backtest(load_fit(doc)) if r[2] == "N_opt")
    assert row[7] == "yes" and row[4].endswith("(run noise only)") and row[4].startswith(f"[{q['ci90_noise'][0]:.4g}")
    headers, cells = tables.exponents(fit)
    assert [c[0] for c in cells] == ["in_context", "cross_attn"] and headers[1] == "a (N_opt)"
    e = fit.exponents()[1]["approach2"]["N_opt"]
    assert cells[1][1] == f"{e['exponent']:.4f} [{e['ci90'][0]:.4f}, {e['ci90'][1]:.4f}]"
    assert len(tables.runs(fit)) == len(fit.runs_vs_approach3()) > 0


def test_build_demo_has_the_what_if_endpoint_and_every_section(app, fit):
    demo = app.build_demo(fit, [])
    config = demo.get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"pva_plot", "runs_plot", "isoflop_plot", "laws_plot", "compare_table", "n_opt", "loss"} <= ids
    assert "what_if" in {d.get("api_name") for d in config["dependencies"]}


def test_app_bad_input_is_one_line_and_exit_2(app, tmp_path, capsys):
    assert app.main(["--fit", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing.json" in err
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": 1, "study": "x"}))
    assert app.main(["--fit", str(tmp_path / "old.json")]) == 2
    assert "schema_version 1" in capsys.readouterr().err
    assert app.main(["--fit", str(tmp_path / "old.json"), "--hub", "a/b"]) == 2
    assert "not both" in capsys.readouterr().err
    (tmp_path / "fit.json").write_text(json.dumps(example_fit(("in_context",))))
    assert app.main(["--fit", str(tmp_path / "fit.json"), "--runs", str(tmp_path)]) == 2
    assert "not a run store" in capsys.readouterr().err


def test_numbers_are_finite_for_budgets_far_below_and_above(fit):
    for C in (1e15, 1e17, 1e25):
        a = what_if(fit, C)
        assert all(math.isfinite(a[k]["value"]) for k in ("N_opt", "D_opt", "loss", "FID"))


def test_a_fit_without_isoflop_groups_answers_from_approach3(app):
    """A Chinchilla-style N x D grid (every run its own budget): Approach 2 is skipped, the page still builds and
    the what-if answers from Approach 3, with no FID."""
    import numpy as np

    from ditlaws.laws.document import fit_document
    from ditlaws.laws.study import FitOptions
    from ditlaws.laws.synthetic import nd_grid_table, paper_truth

    table = nd_grid_table(paper_truth(), np.random.default_rng(0), np.geomspace(1e6, 1e8, 5),
                          np.geomspace(1e9, 1e11, 5))
    fit = load_fit(fit_document(table, FitOptions(n_boot=50, parametric_boot=30, holdout=1)))
    assert fit.doc["approach2"]["status"] == "skipped"
    a = what_if(fit, 1e20)
    assert a["N_opt"]["source"] == "approach3 N_opt" and a["FID"] is None
    assert a["N_opt"]["value"] == fit.predict(1e20)["approach3"]["N_opt"]["value"]
    app.build_demo(fit, [])
