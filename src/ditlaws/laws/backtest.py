"""Backtests: refit without the largest budget(s) and predict them from the smaller ones, as a user would predict.

For k = 1..holdout the laws are refitted on all but the k largest used budgets, with their extrapolation-error
model learned from nested backtests inside those smaller budgets only (nothing of the held-out budgets is used),
and predict each held-out budget. A row reports the predicted value, its 90 % intervals (run noise only, and with
the extrapolation error), the actual value (the held-out budget's own optimum) and ``covered``: the actual value
inside the predicted 90 % interval with extrapolation error, null where the refit had no extrapolation-error model
(``covered_noise``: inside the noise-only one, always set).

Approach 3 is backtested the same way (refitted on the runs of the smaller budgets, warm-started from the full fit)
against the held-out budgets' Approach 2 optima; it needs isoFLOP budgets to compare with.
"""

from __future__ import annotations

import numpy as np

from ditlaws.laws import forms
from ditlaws.laws.a2bias import law_bias
from ditlaws.laws.approach2 import choose_fid_headline, choose_loss_headline, fit_law, with_scatter
from ditlaws.laws.approach3 import Reference, bootstrap, error_models
from ditlaws.laws.bootstrap import summarize
from ditlaws.laws.metrics import BY_LAW, fid_floor_block
from ditlaws.laws.parametric import Problem
from ditlaws.laws.predict import clip_at_floor, law_summary, pick
from ditlaws.laws.refit import refit

A3_BACKTEST_DRAWS = 200


def _row(q: dict, actual: float, actual_draws: np.ndarray, metric=None) -> dict:
    ci, ci_noise = q["ci90"], q["ci90_noise"]
    inside = lambda iv: bool(iv is not None and iv[0] is not None and iv[0] <= actual <= iv[1])
    s = summarize(actual_draws)
    return {"predicted": q["value"], "median": q["median"], "ci90_noise": ci_noise, "ci90": ci, "actual": actual,
            "actual_ci90": s["ci90"], "rel_error": q["value"] / actual - 1 if actual else None,
            "covered": inside(ci) if ci is not None else None, "covered_noise": inside(ci_noise),
            "ci90_measured": (measured := _measured_as_fitted(metric, q["value"], ci, actual, s["ci90"])),
            "covered_measured": inside(measured) if measured is not None else None, "notes": q["notes"],
            **({"law_value": q["law_value"]} if "law_value" in q else {})}


def _measured(value: float, ci, actual: float, actual_ci) -> list[float] | None:
    """The predicted interval for a measurement of the optimum: ``ci`` (for the optimum itself) widened in log space,
    side by side and in quadrature, by the measured optimum's own spread (``actual_ci`` about ``actual``: its
    bootstrap and the law's excess scatter). A held-out optimum is estimated from that budget's runs, so it carries
    this noise on top of the law's error."""
    if ci is None or actual_ci[0] is None or not actual or value <= 0:
        return None
    lv = np.log(value)
    up = np.hypot(np.log(ci[1]) - lv, max(np.log(actual_ci[1] / actual), 0.0))
    down = np.hypot(lv - np.log(ci[0]), max(np.log(actual / actual_ci[0]), 0.0))
    return [float(np.exp(lv - down)), float(np.exp(lv + up))]


def _measured_as_fitted(metric, value: float, ci, actual: float, actual_ci) -> list[float] | None:
    """``_measured`` in the space the law is fitted in (an accuracy's odds, where its errors are multiplicative),
    mapped back to the metric's units: an accuracy's interval then stays inside (0, 1)."""
    if metric is None or ci is None or actual_ci[0] is None:
        return _measured(value, ci, actual, actual_ci)
    to = metric.to_fitted  # monotone increasing
    out = _measured(to(value), [to(ci[0]), to(ci[1])], to(actual), [to(actual_ci[0]), to(actual_ci[1])])
    return None if out is None else [float(metric.from_fitted(v)) for v in out]


def _measured_draws(sf, quantity: str, b: int, scatter: float) -> np.ndarray:
    """The held-out budget's optimum as measured (in the fitted space): its bootstrap draws with the law's excess
    scatter, the spread of a budget's optimum about the law that its bootstrap does not show."""
    return with_scatter(sf.optima.of(quantity)[:, b][:, None], scatter)[:, 0]


def _note_off_centre(rows: dict, held) -> dict:
    """A held-out budget whose sizes barely extend past its optimum (``one_sided``) gives an actual value that
    carries the parabola's off-centre bias: each row says so."""
    if "one_sided" in held.flags:
        for row in rows.values():
            row["notes"] = [*row["notes"], "the held-out budget's sizes barely extend past its optimum (one_sided): "
                                           "its actual value carries the parabola's off-centre bias"]
    return rows


def backtest(sf, max_holdout: int = 2, rng: np.random.Generator | None = None) -> list[dict]:
    if sf.a2_status != "fitted":
        return []
    rng = rng or np.random.default_rng(0)
    out = []
    point = sf.point_optima()
    floor = fid_floor_block(sf.table)
    for k in range(1, max_holdout + 1):
        train, held = sf.used[:-k], sf.used[-k:]
        if len(train) < max(sf.options.min_budgets - 1, 2):
            break
        fitted = {}
        for name, full in sf.laws.items():
            law = fit_law(name, full.form, full.quantity, sf.C[train], point[full.quantity][train],
                          sf.optima.of(full.quantity)[:, train], fixed_floor=full.fixed_floor)
            if law is not None:
                if full.bias is not None:  # Approach 2's bias over the training budgets only
                    law.bias = law_bias(sf.a2_bias.subset(train), law.form, law.quantity, sf.a2_factors is not None)
                fitted[name] = law
        laws = {name: law.as_dict() for name, law in fitted.items()}
        headline = {choose_loss_headline(fitted).get("headline"), choose_fid_headline(fitted).get("headline")}
        a3 = _approach3_block(sf, train, rng) if sf.a3.status == "fitted" else None
        for b in held:
            C = sf.fits[b].C
            base = {"holdout": k, "budget": sf.fits[b].budget, "C": C, "n_train_budgets": len(train)}
            rows = {}
            for name, law in laws.items():
                q = pick(law_summary(law, [C]), 0)
                if law["quantity"] == "FID" and floor is not None:  # as predictions are: never below the floor
                    clip_at_floor(q, floor["value"])
                    if q["law_value"] < floor["value"]:
                        q["notes"].append(f"the law gives FID {q['law_value']:.4g}, below the real-vs-real floor "
                                          f"{floor['value']:.4g}: clipped to the floor")
                m = BY_LAW.get(law["quantity"])
                back = m.from_fitted if m else (lambda y: y)  # the metric's own units (odds -> accuracy)
                actual = point[law["quantity"]][b]
                if not np.isfinite(actual):
                    continue
                rows[name] = _row(q, float(back(actual)), back(_measured_draws(sf, law["quantity"], b,
                                                                              law["excess_scatter"])), m)
                if name in ("L_opt", "L_opt_floor", "FID", "FID_floor"):
                    rows[name]["headline"] = name in headline
            out.append({**base, "approach": "approach2", "quantities": _note_off_centre(rows, sf.fits[b])})
            if a3 is not None:
                rows = {q: _row(pick(law_summary(a3["laws"][q], [C], a3), 0), float(point[q][b]),
                                _measured_draws(sf, q, b, laws[q]["excess_scatter"] if q in laws else 0.0))
                        for q in ("N_opt", "D_opt", "L_opt")}
                out.append({**base, "approach": "approach3", "quantities": _note_off_centre(rows, sf.fits[b])})
    return out


def _approach3_block(sf, train: np.ndarray, rng: np.random.Generator) -> dict | None:
    """Approach 3 refitted on the runs of the training budgets: theta, draws and error models, as in fit.json."""
    t = sf.table
    cut = sf.fits[train[-1]].budget
    mask = t.budget <= cut
    if mask.sum() < 6:
        return None
    p = Problem.of(t.N, t.D, t.loss)
    theta = refit(sf.a3.model.theta, p, mask[None, :].astype(float), estimator=sf.a3.model.estimator)[0]
    if not np.all(np.isfinite(theta)):
        return None
    model = type(sf.a3.model).from_theta(theta, estimator=sf.a3.model.estimator)
    draws = forms.quantize(bootstrap(model, p, min(A3_BACKTEST_DRAWS, max(sf.options.a3_boot, 20)), rng,
                                     sf.a3.method, model.estimator, train=mask))
    ref = sf.reference()
    keep = ref.C <= sf.fits[train[-1]].C * (1 + 1e-9)
    ref = Reference(ref.C[keep], {q: v[keep] for q, v in ref.point.items()},
                    {q: v[:, keep] for q, v in ref.draws.items()})
    ems = error_models(theta, p, t, mask, rng, model.estimator, ref)
    C_max = float(t.C[mask].max())
    laws = {q: {"form": "parametric", "quantity": q, "C_max": C_max, "error_model": ems[q].as_dict()}
            for q in ("N_opt", "D_opt", "L_opt")}
    return {"theta": theta.tolist(), "draws": forms.encode_draws(draws, forms.THETA), "laws": laws}
