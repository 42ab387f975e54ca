"""Calibration of the prediction intervals when the law is misspecified (issue 11): synthetic truths the pure power
law of Approach 2 cannot describe exactly, 20 seeds each; the held-out budget's true optimum should fall inside the
"with extrapolation error" 90 % interval in at least 85 % of cases. The noise-only coverage is reported beside it."""

import numpy as np
import pytest

from ditlaws.laws.document import fit_document
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import CurvedTruth, ParametricTruth, centred_isoflop_table, truth_for

BUDGETS = np.geomspace(1e17, 1e19, 7)  # fit on the first 6, predict the 7th
TRUTHS = {
    # E + A/N^alpha + B/D^beta with E > 0: L_opt is no pure power law of C (N_opt still is).
    "floor": ParametricTruth(truth_for(0.0009, 0.5681, 20.0, -0.1, E=0.4)),
    # optimal N and loss bending in log-log (the N_opt exponent drifts from 0.57 to 0.66 over the budgets)
    "curved": CurvedTruth(gamma=0.01, gamma_L=-0.002),
}


def coverage(truth, seeds=range(20), noise_rel=1e-3):
    rows = []
    for seed in seeds:
        table = centred_isoflop_table(truth, np.random.default_rng(seed), BUDGETS[:6], noise_rel=noise_rel)
        doc = fit_document(table, FitOptions(n_boot=300, parametric=False, holdout=0), targets=[BUDGETS[6]],
                           seed=seed)
        p = doc["predictions"][0]["approach2"]
        true_n, true_l = (float(v) for v in truth.optimum(BUDGETS[6]))
        head = doc["headline"]["L_opt"][1]
        row = []
        for q, true in (("N_opt", true_n), ("L_opt", true_l), (head, true_l)):
            lo, hi = p[q]["ci90"]
            lo_n, hi_n = p[q]["ci90_noise"]
            row += [lo <= true <= hi, lo_n <= true <= hi_n, hi / lo]
        rows.append(row)
    r = np.array(rows, dtype=float)
    return {name: {"covered": r[:, 3 * i].mean(), "covered_noise": r[:, 3 * i + 1].mean(),
                   "median_width": float(np.median(r[:, 3 * i + 2]))}
            for i, name in enumerate(("N_opt", "L_opt (pure)", "L_opt (headline)"))}


@pytest.mark.parametrize("name", sorted(TRUTHS))
def test_extrapolation_intervals_cover_a_misspecified_truth(name):
    stats = coverage(TRUTHS[name])
    for q, s in stats.items():
        print(f"{name}: {q}: covered {s['covered']:.2f} (noise-only {s['covered_noise']:.2f}), "
              f"median width x{s['median_width']:.3f}")
    assert stats["N_opt"]["covered"] >= 0.85 and stats["L_opt (headline)"]["covered"] >= 0.85
    assert stats["N_opt"]["covered"] > stats["N_opt"]["covered_noise"]
    assert stats["L_opt (headline)"]["covered_noise"] < 0.85 or name == "floor"  # noise alone does not cover
    assert stats["N_opt"]["median_width"] < 1.5  # covering by being huge would help nobody


def test_coverage_of_the_true_optimum_interval_against_a_noisy_measurement():
    """Porian-like: 12 budgets a factor 2 apart, 0.3 % loss noise (Porian's parabola residuals: median 0.23 %), the
    largest budget held out and its optimum measured from its own noisy grid (error sd ~14 % in N; Porian's held-out
    optima have a bootstrap spread of ±10-20 %). The interval for the true N_opt covers the truth as promised, yet
    holds only ~70 % of the measurements: the ">= 13 of 15 measurements" check of issue 23 cannot be met by a
    calibrated interval for the true value. The interval for a measurement is the one to check against one."""
    budgets = 1e16 * 2.0 ** np.arange(12)
    truth = TRUTHS["floor"]
    true_n = float(truth.optimum(budgets[-1])[0])
    rows = []
    for seed in range(40):
        table = centred_isoflop_table(truth, np.random.default_rng(seed), budgets, noise_rel=3e-3)
        doc = fit_document(table, FitOptions(n_boot=300, parametric=False, holdout=1), seed=seed)
        (bt,) = [b for b in doc["backtest"] if b["approach"] == "approach2"]
        q = bt["quantities"]["N_opt"]
        lo, hi = q["ci90"]
        rows.append([lo <= true_n <= hi, q["covered"], q["covered_measured"], q["actual"] / true_n - 1,
                     q["covered_noise"], hi / lo])
    r = np.array(rows, dtype=float)
    truth_cov, measured_cov, for_measurement, meas_sd = r[:, 0].mean(), r[:, 1].mean(), r[:, 2].mean(), r[:, 3].std()
    print(f"Porian-like floor truth: the interval for the true N_opt (median width x{np.median(r[:, 5]):.2f}) covers "
          f"the truth {truth_cov:.2f} and the measurement {measured_cov:.2f} (noise-only {r[:, 4].mean():.2f}); the "
          f"interval for a measurement covers it {for_measurement:.2f}; the measurement's error sd {meas_sd:.1%}")
    assert meas_sd > 0.08  # the measurement really is as noisy as Porian's held-out optima
    assert truth_cov >= 0.85 and for_measurement >= 0.85
    assert measured_cov <= 0.8  # a calibrated interval for the truth misses noisy measurements, as on Porian (10/15)
