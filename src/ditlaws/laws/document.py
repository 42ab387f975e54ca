"""fit.json: one document holding every number of a fit, and what the prediction API needs to reproduce them.

The schema is described in docs/ARCHITECTURE.md ("fit.json"). Predictions and backtest rows are computed from
the document itself (``ditlaws.laws.predict``), so what fit_laws.py reports equals what ``load_fit`` returns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ditlaws.jsonio import write_text_atomic
from ditlaws.laws import forms
from ditlaws.laws.backtest import backtest
from ditlaws.laws.bootstrap import summarize
from ditlaws.laws.metrics import BY_LAW, fid_floor_block
from ditlaws.laws.powerlaw import fit_lines, fit_power_law
from ditlaws.laws.predict import SCHEMA_VERSION, FitResult
from ditlaws.laws.study import StudyFit
from ditlaws.versions import versions


def jsonable(obj):
    """numpy scalars/arrays -> Python; NaN and infinities -> null (JSON has neither)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _finite(v):
    return float(v) if v is not None and np.isfinite(v) else None


def budget_entry(sf: StudyFit, i: int) -> dict:
    f = sf.fits[i]
    has = np.isfinite(f.x_opt)
    metrics = {law: _finite(BY_LAW[law].from_fitted(y)) for law, y in f.metric_opt.items()}  # the metric's units
    return {"budget": f.budget, "C": f.C, "n_points": f.n_points, "used": f.used, "flags": f.flags,
            "messages": f.messages, "outliers": f.outliers, "N_opt": f.N_opt if has else None,
            "D_opt": f.D_opt if has else None, "L_opt": _finite(f.L_opt), "metrics": metrics,
            "curvature": f.curvature, "curvature_ci95": list(f.curvature_ci95), "residual_rel_std": f.residual_rel_std,
            "d_line": list(f.d_line),
            "parabola": None if f.coef is None else {"coef_u": f.coef.tolist(), "centre_lnN": f.centre,
                                                     "scale_lnN": f.scale},
            "runs": {"run_id": f.run_id.tolist(), "N": np.exp(f.x).tolist(), "D": np.exp(f.lnD).tolist(),
                     "loss": f.loss.tolist()}}


def approach2_block(sf: StudyFit) -> dict:
    o = sf.options
    block = {"status": sf.a2_status, "reason": sf.a2_reason or None, "budget_tolerance": o.budget_tolerance,
             "budgets": [budget_entry(sf, i) for i in range(len(sf.fits))]}
    if sf.a2_status != "fitted":
        return block
    block.update({
        "laws": {name: law.as_dict() for name, law in sf.laws.items()},
        "loss_choice": sf.loss_choice,
        **({"fid_choice": sf.fid_choice} if sf.fid_choice else {}),
        "a2_bias": sf.a2_bias.as_dict(o.a2_correction),
        "optimum_method": o.optimum, "metric_method": o.fid_method,
        "D_opt_rule": "ln D of the budget's runs regressed on ln N, at N_opt (= C/(6 N_opt) when C = 6ND)",
        "bootstrap": {"method": sf.draws.method, "n": sf.draws.n, "seed": o.seed,
                      "sigma_rel": sf.draws.sigma_rel if sf.draws.method == "noise" else None,
                      "sigma_dof": sf.draws.sigma_dof if sf.draws.method == "noise" else None,
                      "invalid_fraction": float(1 - sf.optima.valid[:, sf.used].mean())},
    })
    return block


def loss_to_fid_block(sf: StudyFit) -> dict | None:
    """The paper's Fig. 3 pairing FID = k·L^p over the budgets' optima that have both (with bootstrap draws)."""
    if sf.a2_status != "fitted" or "FID" not in sf.laws:
        return None
    point = sf.point_optima()
    L, F = point["L_opt"][sf.used], point["FID"][sf.used]
    ok = np.isfinite(L) & np.isfinite(F) & (F > 0)
    if ok.sum() < 2:
        return None
    law = fit_power_law(L[ok], F[ok])
    draws = forms.quantize(power_draws_over(sf, ok))
    return {"status": "fitted", "form": "FID = k·L^p", "params": {"ln_coef": float(law.params[0]),
                                                                   "exponent": float(law.params[1])},
            "coef": law.coef, "exponent": law.exponent, "r2": law.r2, "n_budgets": int(ok.sum()),
            "summary": {"exponent": summarize(draws[:, 1]), "ln_coef": summarize(draws[:, 0])},
            "draws": forms.encode_draws(draws, forms.POWER_PARAMS),
            "points": {"L_opt": L[ok].tolist(), "FID": F[ok].tolist()}}


def power_draws_over(sf: StudyFit, ok: np.ndarray) -> np.ndarray:
    """Per resample: FID against L_opt over the used budgets, as a line in log-log."""
    L = sf.optima.of("L_opt")[:, sf.used][:, ok]
    F = sf.optima.of("FID")[:, sf.used][:, ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        lx, ly = np.log(L), np.log(F)
    out = np.full((len(L), 2), np.nan)
    for r in range(len(L)):  # each resample has its own x values
        m = np.isfinite(lx[r]) & np.isfinite(ly[r])
        if m.sum() >= 2:
            i, s = fit_lines(lx[r][m], ly[r][m][None, :], np.ones((1, int(m.sum())), dtype=bool))
            out[r] = [i[0], s[0]]
    return out


def study_doc(sf: StudyFit, targets, rng: np.random.Generator) -> dict:
    t = sf.table
    doc = {"schema_version": SCHEMA_VERSION, "study": sf.study, "n_runs": len(t),
           "C_max": float(t.C.max()), "C_min": float(t.C.min()), "tokens_per_sample": t.tokens_per_sample,
           "fid_floor": fid_floor_block(t),
           "training_cost": t.cost.get(sf.study),  # FLOPs as trained (trunks + cooldowns) vs independent runs
           "flops": t.flops, "approach2": approach2_block(sf), "approach3": sf.a3.as_dict(),
           "loss_to_fid": loss_to_fid_block(sf), "headline": sf.headline,
           "skipped_records": t.skipped, "warnings": sf.warnings}
    result = FitResult(doc)
    doc["predictions"] = [result.predict(C) for C in targets]
    doc["backtest"] = backtest(sf, sf.options.holdout, rng)
    return jsonable(doc)


def write_fit_json(path: Path, primary: dict, others: list[dict], inputs: list[dict], options: dict,
                   comparison: dict | None, ood: dict | None) -> Path:
    doc = {**primary, "studies": others, "comparison": comparison, "ood": ood, "inputs": inputs,
           "provenance": inputs[0].get("provenance") if inputs else None, "options": options,
           "versions": versions(("numpy", "scipy", "matplotlib"))}
    write_text_atomic(path, json.dumps(jsonable(doc), indent=1, allow_nan=False) + "\n")
    return path


def fit_document(table, options=None, targets=(), seed: int = 0) -> dict:
    """One study's table -> its fit.json document (no files written): fit_study + study_doc with seeded streams.

    ``load_fit(fit_document(...))`` is the in-memory equivalent of running fit_laws.py and reading its fit.json."""
    from ditlaws.laws.compare import seeds_for
    from ditlaws.laws.study import FitOptions, fit_study

    options = options or FitOptions()
    (rng,) = seeds_for(seed, 1)
    sf = fit_study(table, options, rng)
    if not targets:
        targets = [10 * (float(sf.C[sf.used].max()) if sf.a2_status == "fitted" else float(table.C.max()))]
    doc = study_doc(sf, list(targets), rng)
    return jsonable({**doc, "studies": [], "comparison": None, "ood": None, "inputs": [],
                     "provenance": table.provenance, "options": {}, "versions": {}})
