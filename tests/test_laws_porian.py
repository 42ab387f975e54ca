"""Published isoFLOP data (Porian et al. 2024, copied into tests/data with provenance) reproduce through the fitter."""

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from ditlaws.laws.isoflop import fit_isoflops
from ditlaws.laws.powerlaw import fit_power_law
from ditlaws.laws.synthetic import make_table

DATA = Path(__file__).parent / "data"
CONFIG = ("dataset", "hparams", "warmup", "decay", "param_count", "loss_split")


def _rows(name):
    with open(DATA / name) as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def _by_config(rows):
    out = defaultdict(list)
    for r in rows:
        out["/".join(r[k] for k in CONFIG)].append(r)
    return out


def test_ols_of_published_optima_reproduces_the_basic_exponents():
    optima = _by_config(r for r in _rows("porian2024_isoflop_optima.csv") if r["n_star"])
    published = {k: float(v[0]["n_exponent"]) for k, v in _by_config(_rows("porian2024_fit_results_basic.csv")).items()}
    assert len(published) == 15 and published.keys() == optima.keys()
    for config, rows in optima.items():
        law = fit_power_law([float(r["flops"]) for r in rows], [float(r["n_star"]) for r in rows])
        assert round(law.exponent, 4) == round(published[config], 4), config
    assert round(published["rw/tuned/short/const/standard/val"], 4) == 0.4970


def _points_table(rows):
    N = np.array([float(r["n"]) for r in rows])
    D = np.array([float(r["t"]) for r in rows])
    return make_table(N, D, [float(r["loss"]) for r in rows], budget=[float(r["flops"]) for r in rows],
                      study="porian")


# Median |log10(ours / authors')| of the per-budget optimal N, and how far the N_opt exponent lands from the OLS
# exponent of the authors' optima: with all points (the paper's Approach 2) and with --fit-window 3. Measured values
# are in the comments; the bounds leave ~25 % slack. The authors fit near the minimum, so the window lands closer.
EXPECTED = {  # config: [(window, bound on median |dlog10 N|, bound on |d exponent|)]
    "rw/tuned/short/const/standard/val": [(None, 0.08, 0.025), (3.0, 0.025, 0.01)],  # 0.066 +.0167 | 0.018 +.0055
    "rw/base/long/kaplan/kaplan/train": [(None, 0.08, 0.04), (3.0, 0.035, 0.01)],  # 0.064 +.0314 | 0.026 +.0041
    "owt2/tuned/short/const/standard/val": [(None, 0.04, 0.012), (3.0, 0.045, 0.015)],  # 0.028 -.0071 | 0.037 -.0097
}


@pytest.mark.parametrize("config", sorted(EXPECTED))
def test_approach2_lands_near_the_authors_optima(config):
    points = _by_config(_rows("porian2024_isoflop_points.csv"))[config]
    authors = {float(r["flops"]): float(r["n_star"])
               for r in _by_config(_rows("porian2024_isoflop_optima.csv"))[config] if r["n_star"]}
    authors_law = fit_power_law(list(authors), list(authors.values()))
    for window, max_median, max_exponent in EXPECTED[config]:
        fits = fit_isoflops(_points_table(points), window=window)
        used = [f for f in fits if f.used]
        assert len(used) >= len(fits) // 2  # the rest are edge minima or flat, as flagged
        dlog = [np.log10(f.N_opt / authors[f.budget]) for f in used if f.budget in authors]
        assert np.median(np.abs(dlog)) < max_median, (window, np.median(np.abs(dlog)))
        ours = fit_power_law([f.C for f in used], [f.N_opt for f in used])
        assert abs(ours.exponent - authors_law.exponent) < max_exponent, (window, ours.exponent)


def backtest_coverage(window):
    """Leave-largest-budget-out on every configuration: per law, how often the actual optimum of the held-out
    budget lies inside the predicted 90 % interval (with extrapolation error; noise-only; and the interval for a
    measured optimum), and the intervals' median width (hi/lo)."""
    from ditlaws.laws.document import fit_document
    from ditlaws.laws.study import FitOptions

    out = defaultdict(list)
    for _, rows in sorted(_by_config(_rows("porian2024_isoflop_points.csv")).items()):
        doc = fit_document(_points_table(rows), FitOptions(n_boot=300, parametric=False, holdout=1, window=window))
        (bt,) = [b for b in doc["backtest"] if b["approach"] == "approach2"]
        for name, q in bt["quantities"].items():
            one_sided = any("(one_sided)" in n for n in q["notes"])
            for key in {name, "L_opt (headline)" if q.get("headline") else name} | ({f"{name}, one_sided"}
                                                                                     if one_sided else set()):
                out[key].append((q["covered"] is True, q["covered_noise"], q["covered_measured"] is True,  # null: none
                                 q["ci90"][1] / q["ci90"][0] if q["ci90"] else np.inf, abs(q["rel_error"]),
                                 q["ci90_measured"][1] / q["ci90_measured"][0] if q["ci90_measured"] else np.inf))
    return {k: {"covered": float(np.mean([r[0] for r in v])), "covered_noise": float(np.mean([r[1] for r in v])),
                "covered_measured": float(np.mean([r[2] for r in v])), "n": len(v),
                "median_width": float(np.median([r[3] for r in v])),
                "median_width_measured": float(np.median([r[5] for r in v])),
                "median_abs_error": float(np.median([r[4] for r in v]))} for k, v in out.items()}


@pytest.mark.slow
def test_backtest_coverage_one_budget_ahead_on_all_15_configurations():
    """The numbers quoted in the README (run with -s to print them)."""
    for window in (3.0, None):
        stats = backtest_coverage(window)
        for name in ("N_opt", "L_opt", "L_opt_floor", "L_opt (headline)", "N_opt, one_sided"):
            if name not in stats:
                continue
            s = stats[name]
            half = 100 * (np.sqrt(s["median_width"]) - 1)
            half_m = 100 * (np.sqrt(s["median_width_measured"]) - 1)
            print(f"window {window}: {name}: covered {s['covered']:.2f} of {s['n']} (noise-only "
                  f"{s['covered_noise']:.2f}, measured {s['covered_measured']:.2f}), median width "
                  f"x{s['median_width']:.3f} (±{half:.1f} %; measured ±{half_m:.1f} %), "
                  f"median |error| {100 * s['median_abs_error']:.2f} %")
        head, n = stats["L_opt (headline)"], stats["N_opt"]
        # The README's table (regenerated 2026-12-07, error models weighing a curvature and a distance misfit, each
        # law's excess scatter in its draws): the headline L_opt covered 15/15 at both windows (±2.2 % at window 3,
        # ±4.1 % with all points). N_opt is checked against the held-out budget's *measured* optimum, which carries
        # ±10-20 % noise of its own: the interval for a measured optimum covers 15/15 (window 3); the one for the
        # true optimum covers 10/15 (window 3) and 14/15 (all points), expected below 90 % against a noisy
        # measurement (the synthetic truths, where the true optimum is known, check that one:
        # tests/test_laws_calibration.py). Split by the held-out budget's grid (window 3): 2/6 where it is one_sided
        # (one size above its optimum), 8/9 elsewhere.
        assert head["n"] == 15 and head["covered"] == 1.0
        assert n["covered"] > n["covered_noise"] and head["covered"] > head["covered_noise"]
        if window == 3.0:  # near the minimum: L_opt one budget ahead within ±3 % (issue 23), N_opt within x1.3
            assert n["covered_measured"] == 1.0 and n["covered"] >= 9 / 15
            assert np.sqrt(head["median_width"]) < 1.03 and n["median_width"] < 1.3
        else:
            assert n["covered"] >= 14 / 15 and np.sqrt(head["median_width"]) < 1.046
