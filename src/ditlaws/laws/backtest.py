"""Backtests: refit without the largest budget(s) and predict them from the smaller ones."""

from __future__ import annotations

import numpy as np

from ditlaws.laws.bootstrap import summarize
from ditlaws.laws.powerlaw import fit_power_law
from ditlaws.laws.study import StudyFit, law_draws

BACKTEST_QUANTITIES = ("N_opt", "L_opt")


def backtest(sf: StudyFit, max_holdout: int = 2) -> list[dict]:
    """For k = 1..max_holdout, fit on all but the k largest usable budgets and predict each held-out one.

    The bootstrap draws of the budget optima are reused, so the predicted intervals come from the same resamples
    as the main fit. The held-out optimum is itself a noisy estimate, so "covers" asks whether the 90 % interval of
    predicted/actual (both taken from the same resample; the held-out budget's data are independent of the
    training budgets') contains 1. "actual_in_ci90" is the plainer check: the actual point inside the predicted
    90 % interval.
    """
    out = []
    point = sf.point_optima()
    for k in range(1, max_holdout + 1):
        train, held = sf.used[:-k], sf.used[-k:]
        if len(train) < max(sf.options.min_budgets - 1, 2):
            break
        draws = law_draws(sf, train)
        for b in held:
            C = sf.fits[b].C
            entry = {"holdout": k, "budget": sf.fits[b].budget, "C": C, "n_train_budgets": len(train)}
            for name in BACKTEST_QUANTITIES:
                law = fit_power_law(sf.C[train], point[name][train])
                ln_k, e = draws[name]
                pred_draws = np.exp(ln_k + e * np.log(C))
                actual_draws = np.where(sf.optima.valid[:, b], sf.optima_draws(name)[:, b], np.nan)
                pred = summarize(pred_draws)
                ratio = summarize(pred_draws / actual_draws)
                actual = float(point[name][b])
                lo, hi = pred["ci90"]
                entry[name] = {"predicted": float(law(C)), **pred, "actual": actual,
                               "actual_ci90": summarize(actual_draws)["ci90"],
                               "rel_error": float(law(C) / actual - 1), "ratio_ci90": ratio["ci90"],
                               "covers": bool(ratio["n"] > 0 and ratio["ci90"][0] <= 1 <= ratio["ci90"][1]),
                               "actual_in_ci90": bool(lo is not None and lo <= actual <= hi)}
            out.append(entry)
    return out
