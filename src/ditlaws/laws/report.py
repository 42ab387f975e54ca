"""report.md: a plain-language answer, then one section per part of the fit, all read from fit.json.

Each ``section_*`` function returns the markdown lines of one section (empty when the fit has nothing for it);
``write_report`` joins them. Numbers come from the document (and from ``ditlaws.laws.predict`` for predictions),
never recomputed here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ditlaws.jsonio import write_text_atomic
from ditlaws.laws.predict import FitResult, load_fit, shown_interval


def human(x: float | None, unit: str = "") -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:.3g}{unit}"


def num(v) -> str:
    return f"{v:.4g}" if v is not None else "n/a"


def interval(iv, fmt=human) -> str:
    return f"{fmt(iv[0])}–{fmt(iv[1])}" if iv and iv[0] is not None else "n/a"


FORMATS = {"N_opt": human, "D_opt": human}


def unit(v) -> str:
    """An accuracy: 4 significant digits, more near 1 (0.99998, not 1)."""
    if v is None:
        return "n/a"
    if not 0.999 < v < 1:
        return f"{v:.4g}"
    text = f"{v:.6f}"
    return f"1 − {1 - v:.2g}" if text.startswith("1") else text.rstrip("0")


def _fmt(name: str):
    return unit if name.startswith("accuracy") else FORMATS.get(name, num)


def _headline_loss(doc: dict, p: dict) -> tuple[str, dict] | None:
    approach, name = (doc.get("headline") or {}).get("L_opt") or (None, None)
    q = (p.get(approach) or {}).get(name)
    return (f"{approach}.{name}", q) if q else None


def answer(doc: dict) -> str:
    """The one-paragraph plain-language answer for the first prediction target."""
    if not doc["predictions"]:
        return ""
    p = doc["predictions"][0]
    a2, a3 = p.get("approach2") or {}, p.get("approach3") or {}
    src = a2 if "N_opt" in a2 else a3
    if "N_opt" not in src:
        return ""
    n, d = src["N_opt"], src["D_opt"]
    text = (f"At **{p['C']:.3g} FLOPs**, train a **{human(n['value'])}-parameter model** (90 % interval "
            f"{interval(n['ci90'] or n['ci90_noise'])}) on **{human(d['value'])} tokens** (90 % interval "
            f"{interval(d['ci90'] or d['ci90_noise'])})")
    head = _headline_loss(doc, p)
    if head:
        which, q = head
        text += (f"; expected loss **{num(q['value'])}** (90 % interval {interval(q['ci90'] or q['ci90_noise'], num)}"
                 f", headline law `{which}`)")
    fid = ((doc.get("headline") or {}).get("FID") or ["approach2", "FID"])[1]
    for name, label in ((fid, "FID"), ("accuracy", "accuracy"), ("clip_score", "CLIP score")):
        if name in a2:
            q = a2[name]
            if q.get("law_value") is not None and q["law_value"] < q["value"]:
                text += (f", {label} **at its real-vs-real floor {num(q['value'])}** (the law's {num(q['law_value'])} "
                         f"lies below what two sets of real images measure)")
                continue
            text += f", {label} **{num(q['value'])}** (90 % interval {interval(q['ci90'] or q['ci90_noise'], num)}"
            text += f", headline law `approach2.{name}`)" if name == fid and fid != "FID" else ")"
    which = "Approach 2 (isoFLOP optima)" if src is a2 else "Approach 3 (parametric L(N, D))"
    text += (f". From {which} of study `{doc['study']}`; the intervals include the extrapolation error learned from "
             f"nested backtests where the data allowed one (noise-only intervals in the tables below).")
    if src is a2 and "N_opt" in a3:
        text += (f" Approach 3 suggests {human(a3['N_opt']['value'])} parameters (90 % interval "
                 f"{interval(a3['N_opt']['ci90'] or a3['N_opt']['ci90_noise'])}).")
    for w in p["warnings"]:
        text += f" **Note:** {w}."
    return text


def section_approach2(doc: dict, figures: dict) -> list[str]:
    a2 = doc["approach2"]
    if a2["status"] != "fitted":
        return ["## Approach 2: isoFLOP optima", "", a2["reason"], ""]
    lines = ["## Approach 2: isoFLOP optima and their laws", "",
             "| law | fitted | parameters | 90 % interval (exponent) | R² | budgets | scatter beyond noise "
             "| misfit 1 step ahead (pairs) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, law in a2["laws"].items():
        em = law["error_model"]
        s = f"{em['s']:.3g} ({em['n_pairs']})" if em["status"] == "ok" else "none"
        if law["form"] == "power":
            iv = law["summary"]["exponent"]["ci90"]
            params = f"{law['coef']:.4g}·C^{law['exponent']:.4f}"
            ivs = f"[{iv[0]:.4f}, {iv[1]:.4f}]"
        else:
            params = f"{law['E']:.4g} + {law['A']:.4g}·C^-{law['alpha']:.4f}"
            iv = law["summary"]["alpha"]["ci90"]
            ivs = f"α [{iv[0]:.4f}, {iv[1]:.4f}]"
        r2 = f"{law['r2']:.4f}" if law["r2"] is not None else "—"
        flags = f" ({', '.join(law['flags'])})" if law["flags"] else ""
        tau = f"{law['excess_scatter']:.3g}" if law.get("excess_scatter") else "0"
        lines.append(f"| {name} | {law['fitted']} | {params}{flags} | {ivs} | {r2} | {law['n_budgets']} | {tau} "
                     f"| {s} |")
    for what, key, pure, floor in (("loss", "loss_choice", "L_opt", "L_opt_floor"),
                                   ("FID", "fid_choice", "FID", "FID_floor")):
        choice = a2.get(key) or {}
        if choice.get("headline"):
            rms = choice.get("backtest_rms")
            clipped = ", clipped at the real-vs-real floor as predictions are" if pure == "FID" else ""
            detail = (f": nested-backtest RMS error of ln {pure} {rms[pure]:.3g} (pure{clipped}) vs "
                      f"{rms[floor]:.3g} (floor) over {choice['n_pairs']} pairs" if rms else f": {choice['rule']}")
            lines += ["", f"Headline {what} law: **{choice['headline']}**{detail}."]
    lines += ["", "Scatter beyond noise: how far (sd of ln) the budgets' optima scatter about the law beyond their "
                  "own bootstrap noise; the law's intervals and its nested backtests carry it. Misfit 1 step ahead: "
                  "the extrapolation-error scale learned from the nested backtests."]
    lines.append("")
    if "isoflop" in figures:
        lines += [f"![isoFLOP curves and optimal allocation]({figures['isoflop']})", ""]
    return lines


def section_budgets(doc: dict) -> list[str]:
    budgets = doc["approach2"]["budgets"]
    if len(budgets) > 60:
        used = sum(b["used"] for b in budgets)
        return ["### Budget groups", "", f"{len(budgets)} budget groups, {used} passing the isoFLOP checks (too many "
                                         f"to list; see `approach2.budgets` in fit.json).", ""]
    lines = ["### Budgets and quality checks", "",
             "| budget | runs | N_opt | D_opt | L_opt | curvature (95 % CI) | used | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for b in budgets:
        ci = b["curvature_ci95"]
        curv = f"{b['curvature']:.3g} [{ci[0]:.3g}, {ci[1]:.3g}]" if ci[0] is not None else "n/a"
        notes = "; ".join(b["messages"]).replace("|", "/") or "ok"
        lines.append(f"| {b['budget']:.3g} | {b['n_points']} | {human(b['N_opt'])} | {human(b['D_opt'])} | "
                     f"{num(b['L_opt'])} | {curv} | {'yes' if b['used'] else 'no'} | {notes} |")
    return lines + [""]


def section_approach3(doc: dict) -> list[str]:
    a3 = doc["approach3"]
    if a3["status"] != "fitted":
        return ["## Approach 3", "", a3["reason"], ""]
    p, s = a3["params"], a3["summary"]
    est = {"huber": "summed Huber loss of ln L, δ = 1e-3 (Hoffmann et al.)",
           "mle": "Huber likelihood with a free noise scale σ (Besiroglu et al.)"}[a3["estimator"]]
    lines = ["## Approach 3: parametric L(N, D) = E + A/N^α + B/D^β", "",
             f"Estimator: {est}; −log-likelihood {a3['neg_log_likelihood']:.4g}, σ = {a3['sigma']:.3g} (in ln L); "
             f"{a3['n_runs']} runs; bootstrap: {a3['bootstrap']['method']} × {a3['bootstrap']['n']}, warm-started "
             f"from the point estimate.", "",
             "| | E | A | B | α | β | N_opt exponent β/(α+β) | D_opt exponent α/(α+β) |",
             "|---|---|---|---|---|---|---|---|",
             f"| estimate | {p['E']:.4g} | {p['A']:.4g} | {p['B']:.4g} | {p['alpha']:.4f} | {p['beta']:.4f} | "
             f"{a3['exponents']['N_opt']:.4f} | {a3['exponents']['D_opt']:.4f} |",
             "| 90 % | " + " | ".join(f"[{s[k]['ci90'][0]:.4g}, {s[k]['ci90'][1]:.4g}]"
                                      for k in ("E", "A", "B", "alpha", "beta", "exponent_N_opt", "exponent_D_opt"))
             + " |", ""]
    if a3["flags"]:
        lines += ["**Flags:** " + ", ".join(f"`{f}`" for f in a3["flags"]) + ".", ""]
        lines += [f"- {m}" for m in a3["messages"]] + [""]
    return lines


def section_predictions(doc: dict, figures: dict) -> list[str]:
    if not doc["predictions"]:
        return []
    lines = ["## Predictions", "",
             "`value` is the law with the point estimates; `median` the median over bootstrap refits (shown when it "
             "differs by more than 0.1 %). Intervals are 90 %: run noise only, and with the extrapolation error "
             "learned from nested backtests.", "",
             "| C | law | value | median | 90 % noise only | 90 % with extrapolation | notes |",
             "|---|---|---|---|---|---|---|"]
    for p in doc["predictions"]:
        for approach in ("approach2", "approach3"):
            for name, q in (p.get(approach) or {}).items():
                fmt = _fmt(name)
                med = fmt(q["median"]) if q["median"] and abs(q["median"] / q["value"] - 1) > 1e-3 else "="
                head = " **(headline)**" if q.get("headline") else ""
                notes = "; ".join(q["notes"]).replace("|", "/")
                lines.append(f"| {p['C']:.3g} | {approach[-1]}: {name}{head} | {fmt(q['value'])} | {med} | "
                             f"{interval(q['ci90_noise'], fmt)} | {interval(q['ci90'], fmt)} | {notes} |")
        if p.get("fid_from_loss"):
            q = p["fid_from_loss"]
            lines.append(f"| {p['C']:.3g} | FID from the headline loss | {num(q['value'])} | — | "
                         f"{interval(q['ci90_noise'], num)} | {interval(q['ci90'], num)} | "
                         f"{'; '.join(q.get('notes') or ['FID = k·L^p']).replace('|', '/')} |")
    lines.append("")
    warned = [(p["C"], w) for p in doc["predictions"] for w in p["warnings"]]
    lines += [f"- **C = {C:.3g}:** {w}." for C, w in warned] + ([""] if warned else [])
    if "loss_metrics" in figures:
        lines += [f"![loss and generation metrics of compute-optimal models]({figures['loss_metrics']})", ""]
    return lines


MEASUREMENT_RULE = ("The actual value is itself estimated from the held-out budget's runs, with noise of its own: "
                    "`as a measurement` is the interval with extrapolation error widened by that estimate's spread "
                    "(its bootstrap and the law's excess scatter), the interval a measurement should fall in "
                    "(`ci90_measured`, `covered_measured` in fit.json; n/a where the refit had no interval with "
                    "extrapolation error to widen).")


def section_backtest(doc: dict, figures: dict) -> list[str]:
    """Each held-out budget's prediction with the 90 % interval it is shown with, and ``covered`` for that interval:
    the one with extrapolation error where the refit had a model of it, else the noise-only one (marked)."""
    if not doc["backtest"]:
        return []
    rows = [(bt, name, q, *shown_interval(q)) for bt in doc["backtest"] for name, q in bt["quantities"].items()]
    kinds = {kind for *_, kind in rows}
    if kinds == {"with extrapolation error"}:
        title, rule = "predicted [90 % with extrapolation]", ("`covered`: the actual value lies inside the predicted "
                                                             "90 % interval with extrapolation error (inside the "
                                                             "noise-only interval in parentheses).")
    elif "with extrapolation error" not in kinds:
        title, rule = "predicted [90 % noise only]", ("The refits had too few budgets for an extrapolation-error "
                                                      "model, so the intervals shown carry run noise only; "
                                                      "`covered` is the actual value inside that noise-only interval "
                                                      "(`covered_noise` in fit.json).")
    else:
        title, rule = "predicted [90 % interval]", ("Intervals carry the extrapolation error where the refit had a "
                                                    "model of it, else run noise only (marked *noise only*); "
                                                    "`covered` is for the interval shown.")
    lines = ["## Backtest: predict the largest budget(s) from the smaller ones", "",
             "Each refit sees only the smaller budgets (its extrapolation error is learned from them alone). " + rule
             + " " + MEASUREMENT_RULE, "",
             f"| held out | budget | law | {title} | actual | error | covered | as a measurement |",
             "|---|---|---|---|---|---|---|---|"]
    counts, measured = {}, []
    for bt, name, q, ci, covered, kind in rows:
        fmt = _fmt(name)
        err = f"{q['rel_error']:+.1%}" if q["rel_error"] is not None else "n/a"
        cov = "n/a" if covered is None else "yes" if covered else "no"
        if kind == "with extrapolation error" and q.get("covered_noise") is not None:
            cov += f" ({'yes' if q['covered_noise'] else 'no'})"
        mark = " *noise only*" if kind == "run noise only" and len(kinds) > 1 else ""
        as_measured = "n/a"
        if q.get("ci90_measured") and isinstance(q.get("covered_measured"), bool):
            as_measured = f"[{interval(q['ci90_measured'], fmt)}] {'yes' if q['covered_measured'] else 'no'}"
            measured.append(q["covered_measured"])
        lines.append(f"| {bt['holdout']} | {bt['budget']:.3g} | {bt['approach'][-1]}: {name} | "
                     f"{fmt(q['predicted'])} [{interval(ci, fmt)}]{mark} | {fmt(q['actual'])} | {err} | {cov} | "
                     f"{as_measured} |")
        if covered is not None:
            hits, total = counts.get(kind, (0, 0))
            counts[kind] = (hits + covered, total + 1)
    hits, total = sum(h for h, _ in counts.values()), sum(t for _, t in counts.values())
    parts = [f"{h} of {t} {k}" for k, (h, t) in sorted(counts.items())]
    lines += ["", f"Covered by the interval shown: {hits} of {total}" +
              (f" ({'; '.join(parts)})." if len(parts) > 1 else f" ({next(iter(counts))})." if counts else ".") +
              (f" As measurements: {sum(measured)} of {len(measured)}." if measured else ""), ""]
    off_centre = sorted({bt["budget"] for bt, _, q, *_ in rows if any("(one_sided)" in n for n in q.get("notes", []))})
    if off_centre:
        lines += [f"Held-out budget(s) {', '.join(f'{b:.3g}' for b in off_centre)}: the sizes barely extend past the "
                  f"optimum (`one_sided`), so the actual values carry the parabola's off-centre bias and a miss there "
                  f"is partly the measurement's.", ""]
    if "backtest" in figures:
        lines += [f"![backtest: predicted against actual]({figures['backtest']})", ""]
    return lines


def section_comparison(fit: FitResult, figures: dict) -> list[str]:
    comparison = fit.root.get("comparison")
    if not comparison:
        return []
    laws = ("N_opt", "D_opt", "L_opt", "approach3.N_opt")
    lines = ["## Comparison of studies", "", "| study | " + " | ".join(f"{n} exponent [90 %]" for n in laws) + " |",
             "|---" * (len(laws) + 1) + "|"]
    for row in comparison["table"]:
        cells = [f"{row[n]['exponent']:.4f} [{row[n]['ci90'][0]:.4f}, {row[n]['ci90'][1]:.4f}]" if n in row
                 else "—" for n in laws]
        lines.append(f"| {row['study']} | " + " | ".join(cells) + " |")
    lines += ["", "| a − b | law | difference | 95 % interval | significant |", "|---|---|---|---|---|"]
    for d in comparison["differences"]:
        lines.append(f"| {d['a']} − {d['b']} | {d['law']} | {d['difference']:+.4f} | "
                     f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}] | {'yes' if d['significant_95'] else 'no'} |")
    lines.append("")
    if "compare" in figures:
        lines += [f"![comparison of studies]({figures['compare']})", ""]
    return lines


def section_ood(fit: FitResult, figures: dict) -> list[str]:
    ood = fit.root.get("ood")
    if not ood:
        return []
    lines = ["## In-domain vs out-of-domain loss", "",
             f"ood = {ood['slope']:.4f} · loss + {ood['intercept']:.4f} (R² {ood['r2']:.4f}, {ood['n_runs']} runs)", ""]
    if "ood" in figures:
        lines += [f"![in-domain vs out-of-domain]({figures['ood']})", ""]
    return lines


def section_samples(figures: dict) -> list[str]:
    if "samples" not in figures:
        return []
    return ["## Samples of each budget's compute-optimal run", "",
            "Rows are budgets (smallest first), each the lowest-loss run of its budget; column j has the same prompt "
            "and starting noise in every row.", "", f"![samples by budget]({figures['samples']})", ""]


def section_reading(doc: dict) -> list[str]:
    return ["## How to read the intervals", "",
            "Noise-only intervals are bootstrap percentiles: the middle 90 % of the values obtained by refitting "
            "everything on resampled data (`approach2.bootstrap`, `approach3.bootstrap` in fit.json). They say how "
            "well this grid pins the laws down, not whether the laws hold further out. The intervals with "
            "extrapolation error add, in quadrature and in log space, an error that grows with the log-distance "
            "beyond the largest fitted budget, at the rate measured by refitting each law on the smaller budgets "
            "and predicting the larger ones (`error_model` of each law). Beyond 100x the largest budget the "
            "predictions carry a warning.", ""]


def section_warnings(fit: FitResult) -> list[str]:
    docs = [fit.root, *(fit.root.get("studies") or [])]
    warnings = [w for d in docs for w in d["warnings"]]
    skipped = [s for d in docs for s in d["skipped_records"]]
    lines = []
    if warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in dict.fromkeys(warnings)] + [""]
    if skipped:
        lines += ["## Skipped records", "", "| record | reason |", "|---|---|"]
        lines += [f"| `{s['where']}` | {s['reason'].replace('|', '/')} |" for s in skipped] + [""]
    return lines


def section_inputs(fit: FitResult) -> list[str]:
    lines = ["## Inputs", ""]
    for i in fit.root.get("inputs") or []:
        rev = f", revision `{i['revision']}`" if i.get("revision") else ""
        lines.append(f"- `{i['path']}` — study `{i['study']}`, {i['n_runs']} runs, sha256 `{i['fingerprint'][:16]}…`"
                     f"{rev}")
    cost = fit.root.get("training_cost")
    if cost:
        how = (f"{cost['trunks']} trunks and their cooldown branches" if cost["trunks"] else "independent runs")
        lines.append(f"- training compute of `{fit.root['study']}`: {cost['trained_flops']:.3g} FLOPs (6ND) as trained "
                     f"({how}) for {cost['isoflop_points']} isoFLOP points in {cost['budgets']} budgets; "
                     f"independent runs would cost {cost['independent_flops']:.3g} "
                     f"({cost['trained_flops'] / cost['independent_flops']:.2f}x)")
    return lines + [""]


def write_report(path: Path, fit_json: Path | dict, figures: dict[str, str]) -> Path:
    fit = load_fit(fit_json)
    doc = fit.doc
    lines = [f"# Scaling laws — {doc['study']}", "", answer(doc), ""]
    for section in (section_approach2(doc, figures), section_budgets(doc), section_approach3(doc),
                    section_predictions(doc, figures), section_backtest(doc, figures),
                    section_comparison(fit, figures), section_ood(fit, figures), section_samples(figures),
                    section_reading(doc),
                    section_warnings(fit), section_inputs(fit)):
        lines += section
    write_text_atomic(path, "\n".join(lines) + "\n")
    return Path(path)
