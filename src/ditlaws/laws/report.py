"""fit.json (every number, machine-readable) and report.md (figures and a plain-language answer)."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path

import numpy as np

from ditlaws.laws.bootstrap import summarize
from ditlaws.laws.study import StudyFit

SCHEMA_VERSION = 1


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
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def versions() -> dict:
    import matplotlib
    import scipy

    import ditlaws

    return {"ditlaws": ditlaws.__version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "matplotlib": matplotlib.__version__}


def law_entry(sf: StudyFit, name: str) -> dict:
    law = sf.laws[name]
    ln_k, e = sf.law_draws[name]
    k, ex = summarize(np.exp(ln_k)), summarize(e)
    return {**law.as_dict(), "median": {"coef": k["median"], "exponent": ex["median"]},
            "ci90": {"coef": k["ci90"], "exponent": ex["ci90"]}, "ci95": {"coef": k["ci95"], "exponent": ex["ci95"]},
            "n_resamples": ex["n"]}


def budget_entry(f) -> dict:
    return {"budget": f.budget, "C": f.C, "n_points": f.n_points, "used": f.used, "flags": f.flags,
            "messages": f.messages, "outliers": f.outliers, "N_opt": f.N_opt if np.isfinite(f.x_opt) else None,
            "D_opt": f.D_opt if np.isfinite(f.x_opt) else None, "L_opt": f.L_opt, "FID": f.fid_opt,
            "curvature": f.curvature, "curvature_ci95": list(f.curvature_ci95),
            "residual_rel_std": f.residual_rel_std,
            "parabola": None if f.coef is None else {"coef_u": f.coef, "centre_lnN": f.centre, "scale_lnN": f.scale}}


def approach3_entry(sf: StudyFit) -> dict | None:
    if sf.parametric is None:
        return None
    entry = sf.parametric.as_dict()
    if sf.parametric_draws is not None:
        d = sf.parametric_draws
        a, b, e, alpha, beta = d.T
        samples = {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": alpha, "beta": beta,
                   "a": beta / (alpha + beta), "b": alpha / (alpha + beta)}
        entry["intervals"] = {k: summarize(v) for k, v in samples.items()}
        entry["n_resamples"] = int(np.isfinite(d[:, 0]).sum())
    return entry


def study_entry(sf: StudyFit, predictions: list[dict], backtests: list[dict]) -> dict:
    o = sf.options
    approach2 = {name: law_entry(sf, name) for name in sf.laws}
    approach2["budgets"] = [budget_entry(f) for f in sf.fits]
    approach2["optimum_method"] = o.optimum
    approach2["fid_method"] = o.fid_method if "FID" in sf.laws else None
    approach2["D_opt_rule"] = "ln D of the budget's runs regressed on ln N, at N_opt (= C/(6 N_opt) when C = 6ND)"
    approach2["bootstrap"] = {"method": sf.draws.method, "n": sf.draws.n, "seed": o.seed,
                              "sigma_rel": sf.draws.sigma_rel if sf.draws.method == "noise" else None,
                              "sigma_dof": sf.draws.sigma_dof if sf.draws.method == "noise" else None,
                              "invalid_fraction": float(1 - sf.optima.valid[:, sf.used].mean())}
    return {"study": sf.study, "n_runs": len(sf.table), "approach2": approach2, "approach3": approach3_entry(sf),
            "predictions": predictions, "backtest": backtests, "warnings": sf.warnings}


def write_fit_json(path: Path, primary: dict, others: list[dict], inputs: list[dict], options: dict,
                   comparison: dict | None, ood: dict | None) -> Path:
    doc = {"schema_version": SCHEMA_VERSION, **primary, "studies": others, "comparison": comparison, "ood": ood,
           "inputs": inputs, "options": options, "versions": versions()}
    path.write_text(json.dumps(jsonable(doc), indent=2) + "\n")
    return path


def human(x: float, unit: str = "") -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def _interval(d: dict, fmt=human) -> str:
    lo, hi = d.get("ci90", [None, None])
    return f"{fmt(lo)}–{fmt(hi)}" if lo is not None else "n/a"


def _num(v) -> str:
    return f"{v:.4g}" if v is not None else "n/a"


def _cell(q: dict, name: str, fmt) -> str:
    return f"{fmt(q[name]['value'])} [{_interval(q[name], fmt)}]" if name in q else "—"


def answer(study: dict) -> str:
    """The one-paragraph plain-language answer for the first prediction target."""
    if not study["predictions"]:
        return ""
    p = study["predictions"][0]
    a2 = p["approach2"]
    num = _num
    text = (f"At **{p['C']:.3g} FLOPs**, train a **{human(a2['N_opt']['value'])}-parameter model** "
            f"(90 % interval {_interval(a2['N_opt'])}) on **{human(a2['D_opt']['value'])} tokens** "
            f"(90 % interval {_interval(a2['D_opt'])}); expected loss **{num(a2['L_opt']['value'])}** "
            f"(90 % interval {_interval(a2['L_opt'], num)})")
    if "FID" in a2:
        text += f" and FID **{num(a2['FID']['value'])}** (90 % interval {_interval(a2['FID'], num)})"
    n_used = sum(b["used"] for b in study["approach2"]["budgets"])
    text += (f". This extrapolates the isoFLOP optima of {n_used} budgets of study `{study['study']}` "
             f"(Approach 2, {study['approach2']['bootstrap']['n']} bootstrap resamples, method "
             f"`{study['approach2']['bootstrap']['method']}`).")
    a3 = p.get("approach3") or {}
    if "N_opt" in a3:
        text += (f" The parametric fit L(N, D) (Approach 3) suggests {human(a3['N_opt']['value'])} parameters "
                 f"(90 % interval {_interval(a3['N_opt'])}) on {human(a3['D_opt']['value'])} tokens.")
    return text


def _law_rows(study: dict) -> list[str]:
    rows = ["| law | coefficient | exponent | 90 % interval (exponent) | R² | budgets |", "|---|---|---|---|---|---|"]
    for name in ("N_opt", "D_opt", "L_opt", "FID"):
        e = study["approach2"].get(name)
        if e:
            lo, hi = e["ci90"]["exponent"]
            rows.append(f"| {name} = k·C^e | {e['coef']:.4g} | {e['exponent']:.4f} | [{lo:.4f}, {hi:.4f}] | "
                        f"{e['r2']:.4f} | {e['n_budgets']} |")
    return rows


def write_report(path: Path, primary: dict, others: list[dict], figures: dict[str, str], comparison: dict | None,
                 ood: dict | None, inputs: list[dict]) -> Path:
    lines = [f"# Scaling laws — {primary['study']}", "", answer(primary), ""]
    lines += ["## Approach 2: isoFLOP optima and power laws", ""] + _law_rows(primary) + [""]
    if "isoflop" in figures:
        lines += [f"![isoFLOP curves and optimal allocation]({figures['isoflop']})", ""]
    lines += ["### Budgets and quality checks", "", "| budget | runs | N_opt | D_opt | L_opt | curvature (95 % CI) | "
              "used | notes |", "|---|---|---|---|---|---|---|---|"]
    for b in primary["approach2"]["budgets"]:
        ci = b["curvature_ci95"]
        curv = f"{b['curvature']:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]" if ci[0] is not None else "n/a"
        notes = "; ".join(b["messages"]).replace("|", "/") or "ok"
        lines.append(f"| {b['budget']:.3g} | {b['n_points']} | {human(b['N_opt'])} | {human(b['D_opt'])} | "
                     f"{b['L_opt']:.4g} | {curv} | {'yes' if b['used'] else 'no'} | {notes} |"
                     if b["L_opt"] is not None else
                     f"| {b['budget']:.3g} | {b['n_points']} | n/a | n/a | n/a | n/a | no | {notes} |")
    lines.append("")
    if "loss_fid" in figures:
        lines += [f"![loss and FID of compute-optimal models]({figures['loss_fid']})", ""]
    a3 = primary["approach3"]
    if a3:
        lines += ["## Approach 3: parametric L(N, D) = E + A/N^α + B/D^β", "",
                  "| E | A | B | α | β | a = β/(α+β) | b = α/(α+β) |", "|---|---|---|---|---|---|---|",
                  f"| {a3['E']:.4g} | {a3['A']:.4g} | {a3['B']:.4g} | {a3['alpha']:.4f} | {a3['beta']:.4f} | "
                  f"{a3['a']:.4f} | {a3['b']:.4f} |"]
        if "intervals" in a3:
            iv = a3["intervals"]
            lines.append("| " + " | ".join(f"[{iv[k]['ci90'][0]:.3g}, {iv[k]['ci90'][1]:.3g}]"
                                           for k in ("E", "A", "B", "alpha", "beta", "a", "b")) + " |")
        lines.append("")
    if primary["predictions"]:
        lines += ["## Predictions (both approaches, median and 90 % interval)", "",
                  "| C | approach | N_opt | D_opt | L_opt | FID |", "|---|---|---|---|---|---|"]
        for p in primary["predictions"]:
            for appr in ("approach2", "approach3"):
                q = p[appr]
                if not q:
                    continue
                cells = [_cell(q, n, f) for n, f in (("N_opt", human), ("D_opt", human), ("L_opt", _num),
                                                     ("FID", _num))]
                lines.append(f"| {p['C']:.3g} | {appr[-1]} | " + " | ".join(cells) + " |")
        lines.append("")
    if primary["backtest"]:
        lines += ["## Backtest: predict the largest budget(s) from the smaller ones", "",
                  "| held out | budget | quantity | predicted [90 %] | actual [90 %] | error | predicted/actual [90 %] "
                  "| covered |", "|---|---|---|---|---|---|---|---|"]
        for bt in primary["backtest"]:
            for name in ("N_opt", "L_opt"):
                q = bt[name]
                fmt = human if name == "N_opt" else (lambda v: f"{v:.4g}")
                r = q["ratio_ci90"]
                ratio = f"[{r[0]:.4f}, {r[1]:.4f}]" if r[0] is not None else "n/a"
                actual = _interval({"ci90": q["actual_ci90"]}, fmt)
                lines.append(f"| {bt['holdout']} | {bt['budget']:.3g} | {name} | {fmt(q['predicted'])} "
                             f"[{_interval(q, fmt)}] | {fmt(q['actual'])} [{actual}] | {q['rel_error']:+.1%} | "
                             f"{ratio} | {'yes' if q['covers'] else 'no'} |")
        lines.append("")
    if comparison:
        lines += ["## Comparison of studies", "", "| study | " + " | ".join(
            f"{n} exponent [90 %]" for n in ("N_opt", "D_opt", "L_opt")) + " |", "|---|---|---|---|"]
        for row in comparison["table"]:
            cells = [f"{row[n]['exponent']:.4f} [{row[n]['ci90'][0]:.4f}, {row[n]['ci90'][1]:.4f}]" if n in row
                     else "—" for n in ("N_opt", "D_opt", "L_opt")]
            lines.append(f"| {row['study']} | " + " | ".join(cells) + " |")
        lines += ["", "| a − b | law | difference | 95 % interval | significant |", "|---|---|---|---|---|"]
        for d in comparison["differences"]:
            lines.append(f"| {d['a']} − {d['b']} | {d['law']} | {d['difference']:+.4f} | "
                         f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] | {'yes' if d['significant_95'] else 'no'} |")
        lines.append("")
        if "compare" in figures:
            lines += [f"![architecture comparison]({figures['compare']})", ""]
    if ood:
        lines += ["## In-domain vs out-of-domain loss", "",
                  f"ood = {ood['slope']:.4f} · loss + {ood['intercept']:.4f} (R² {ood['r2']:.4f}, "
                  f"{ood['n_runs']} runs)", ""]
        if "ood" in figures:
            lines += [f"![in-domain vs out-of-domain]({figures['ood']})", ""]
    lines += ["## How to read the intervals", "",
              "Intervals are bootstrap percentiles: the 90 % interval holds the middle 90 % of the values obtained "
              "by refitting everything on resampled data (see `approach2.bootstrap` in fit.json for the method). "
              "They reflect run-to-run noise given this grid of budgets and sizes, not systematic error from "
              "extrapolating far beyond the largest budget; the backtest above shows how well that extrapolation "
              "held up inside the data.", ""]
    warnings = primary["warnings"] + [w for s in others for w in s["warnings"]]
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    lines += ["## Inputs", ""] + [f"- `{i['path']}` — {i['n_runs']} runs, sha256 `{i['fingerprint'][:16]}…`"
                                  + (f", revision `{i['revision']}`" if i.get("revision") else "") for i in inputs]
    path.write_text("\n".join(lines) + "\n")
    return path
