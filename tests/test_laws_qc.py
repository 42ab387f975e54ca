"""Per-budget quality checks, the batched solvers, and reading runs from CSV files and run-store folders."""

import json

import numpy as np
import pytest

from ditlaws.errors import UserError
from ditlaws.laws.isoflop import fit_isoflops
from ditlaws.laws.parabola import design as parabola_design
from ditlaws.laws.parabola import solve as solve_parabolas
from ditlaws.laws.parabola import vertex
from ditlaws.laws.powerlaw import fit_lines, fit_power_law
from ditlaws.laws.synthetic import isoflop_table, paper_size, paper_truth
from ditlaws.laws.table import load_runs


def _grid(depths, budgets=(1e17,), noise=0.0, seed=0):
    return isoflop_table(paper_truth(), np.random.default_rng(seed), noise_rel=noise, budgets=budgets, depths=depths)


def test_batched_parabolas_equal_polyfit():
    rng = np.random.default_rng(0)
    x = rng.uniform(10, 20, size=(5, 9))
    y = 0.3 * (x - 15) ** 2 + rng.normal(size=x.shape)
    coef = solve_parabolas(parabola_design(x, 15.0, 5.0), y)
    for r in range(5):
        c2, c1, c0 = np.polyfit(x[r], y[r], 2)
        xo, yo = vertex(coef[r], 15.0, 5.0)
        assert xo == pytest.approx(-c1 / (2 * c2), rel=1e-9)
        assert yo == pytest.approx(c0 - c1**2 / (4 * c2), rel=1e-9)
    degenerate = solve_parabolas(parabola_design(np.array([[1.0, 1.0, 2.0, 2.0]]), 1.5, 0.5), np.ones((1, 4)))
    assert np.isnan(degenerate).all()


def test_power_law_and_masked_lines():
    C = np.array([1e17, 1e18, 1e19, 1e20])
    law = fit_power_law(C, 0.0009 * C**0.5681)
    assert law.exponent == pytest.approx(0.5681, abs=1e-12)
    assert law.coef == pytest.approx(0.0009, rel=1e-9)
    assert law.r2 == pytest.approx(1.0)
    y = np.log(np.vstack([2 * C**0.5, 3 * C**0.7]))
    mask = np.array([[True, True, False, True], [True, False, False, False]])
    intercept, slope = fit_lines(np.log(C), y, mask)
    assert slope[0] == pytest.approx(0.5) and np.exp(intercept[0]) == pytest.approx(2.0)
    assert np.isnan(slope[1])  # one point is not a line


def test_clean_budget_passes_and_vertex_matches_truth():
    (fit,) = fit_isoflops(_grid(range(2, 16)))
    assert fit.used and fit.flags == []
    assert fit.N_opt == pytest.approx(paper_truth().optimal(1e17)[0], rel=0.05)
    assert fit.curvature_ci95[0] > 0
    assert fit.D_opt == pytest.approx(1e17 / (6 * fit.N_opt), rel=1e-9)


def test_edge_minimum_is_flagged_and_excluded():
    # Depths 7..15 are all larger than the 1e17 optimum (~depth 4.4): the minimum lies below the sampled range.
    (fit,) = fit_isoflops(_grid(range(7, 16)))
    assert "edge_minimum" in fit.flags and not fit.used
    assert any("edge minimum" in m and "below the smallest" in m for m in fit.messages)
    (kept,) = fit_isoflops(_grid(range(7, 16)), allow_edge=True)
    assert kept.used and "edge_minimum" in kept.flags
    assert kept.N_opt < paper_size(7)


def test_single_point_and_two_point_budgets_are_flagged():
    for depths in ((5,), (4, 6)):
        (fit,) = fit_isoflops(_grid(depths))
        assert fit.flags == ["too_few_points"] and not fit.used
        assert "a parabola needs at least 3" in fit.messages[0]


def test_few_points_warns_but_counts():
    (fit,) = fit_isoflops(_grid((3, 4, 5, 6)))
    assert "few_points" in fit.flags and fit.used


def test_flat_budget_is_flagged():
    table = _grid(range(2, 16))
    table.loss = 0.8 * (1 + 1e-3 * np.random.default_rng(0).standard_normal(len(table)))
    (fit,) = fit_isoflops(table)
    assert not fit.used
    assert ("flat" in fit.flags) or ("not_convex" in fit.flags)
    assert any("includes 0" in m or "no minimum" in m for m in fit.messages)


def test_outlier_screening_drops_one_bad_run():
    table = _grid(range(2, 16), noise=1e-4)
    table.loss[3] *= 1.02
    (plain,) = fit_isoflops(table)
    (screened,) = fit_isoflops(table, screen_outliers=True)
    assert screened.outliers == [table.run_id[3]]
    truth = paper_truth().optimal(1e17)[0]
    assert abs(np.log(screened.N_opt / truth)) < abs(np.log(plain.N_opt / truth))


def test_fit_window_keeps_runs_near_the_best():
    (fit,) = fit_isoflops(_grid(range(2, 16)), window=4.0)
    best = paper_size(4)
    assert np.all(np.abs(fit.x - np.log(best)) <= np.log(4.0) + 1e-9)
    assert fit.used


def _record(study, run_id, budget, N, D, **extra):
    return {"run_id": run_id, "study": study, "budget": budget, "N": N, "D": D, "C": 6 * N * D,
            "C_closed_form": 7 * N * D, "loss_last10pct": 0.9, **extra}


def test_reads_a_run_store_folder(tmp_path):
    root = tmp_path / "store" / "runs" / "incontext"
    root.mkdir(parents=True)
    recs = [_record("incontext", "a", 1e15, 1e5, 1e9, eval={"val_loss": {"mean": 0.5, "sem": 0.01}, "fid": 30.0}),
            _record("incontext", "b", 1e15, 2e5, 5e8, eval={"ood": {"val_loss": {"mean": 0.7}}})]
    for r in recs:
        (root / f"{r['run_id']}.json").write_text(json.dumps(r))
    table = load_runs(tmp_path / "store")
    assert table.loss.tolist() == [0.5, 0.9]  # eval.val_loss.mean wins over loss_last10pct
    assert table.fid[0] == 30.0 and np.isnan(table.fid[1])
    assert np.isnan(table.ood_loss[0]) and table.ood_loss[1] == 0.7
    assert table.C.tolist() == [6e14, 6e14]
    assert load_runs(tmp_path / "store", flops="closed_form").C.tolist() == [7e14, 7e14]
    assert table.provenance["revision"].startswith("local-") and len(table.fingerprint) == 64
    (root / "c.json").write_text(json.dumps({"run_id": "c", "budget": 1e15, "N": 1, "D": 1}))
    table = load_runs(tmp_path / "store")  # a partial record is listed and skipped, not fatal ...
    assert len(table) == 2 and table.skipped[0]["where"].endswith("c.json") and "no loss" in table.skipped[0]["reason"]
    with pytest.raises(UserError, match=r"c\.json: no loss"):  # ... unless --strict
        load_runs(tmp_path / "store", strict=True)


def test_csv_errors_name_the_file_and_column(tmp_path):
    f = tmp_path / "runs.csv"
    f.write_text("budget,N,loss\n1e15,1e5,0.5\n")
    with pytest.raises(UserError, match=r"runs\.csv: missing column\(s\) D"):
        load_runs(f)
    f.write_text("# a comment\nbudget,N,D,loss\n1e15,1e5,1e9,0.5\n1e15,abc,1e9,0.5\n")
    with pytest.raises(UserError, match=r"runs\.csv line 4: 'N' must be a number"):
        load_runs(f)
    with pytest.raises(UserError, match="C_closed_form"):
        load_runs(tmp_path / "runs.csv", flops="closed_form")
    with pytest.raises(UserError, match="does not exist"):
        load_runs(tmp_path / "nope.csv")


def test_spline_optimum_agrees_with_parabola_on_a_clean_curve():
    (parabola,) = fit_isoflops(_grid(range(2, 16), noise=1e-4))
    (spline,) = fit_isoflops(_grid(range(2, 16), noise=1e-4), method="spline")
    assert spline.used and spline.N_opt == pytest.approx(parabola.N_opt, rel=0.1)


def test_off_centre_grid_is_flagged_but_counts():
    # The 1e17 optimum sits near depth 4.4: depths 2..5 leave one size above it, 2..15 bracket it widely.
    (centred,) = fit_isoflops(_grid(range(2, 16)))
    (one_sided,) = fit_isoflops(_grid(range(2, 6)))
    assert "one_sided" not in centred.flags
    assert one_sided.used and "one_sided" in one_sided.flags
    (message,) = [m for m in one_sided.messages if "off-centre" in m]
    assert "only 1 sampled size above its optimum" in message and "sample sizes above it" in message
