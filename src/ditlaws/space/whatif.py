""""What should I train": every number at one budget, taken from ``FitResult.predict`` (nothing re-derived).

    answer = what_if(load_fit("fit.json"), 1.5e21, presets)
    answer["N_opt"]["value"], answer["loss"]["ci90"], answer["preset"]["depth"], answer["warnings"]

N_opt and D_opt are Approach 2's laws (the paper's), Approach 3's when Approach 2 was not fitted; the loss is the law
the fit marks as its headline; FID is the headline FID law at the optimum (the pure law, or the one above the
real-vs-real floor), else FID through the loss (FID = k·L^p). Images
are D_opt / tokens_per_sample, the fit's own tokens per sample (a unit conversion, absent when fit.json has none).
Intervals are the 90 % ones with extrapolation error, or run noise only where the fit had no nested backtest.
"""

from __future__ import annotations

from ditlaws.laws.predict import FitResult
from ditlaws.space.presets import nearest_preset


def _entry(q: dict | None, source: str) -> dict | None:
    if not q or q.get("value") is None:
        return None
    with_extrapolation = q.get("ci90") is not None
    law_value = q.get("law_value")
    return {"value": q["value"], "ci90": q["ci90"] if with_extrapolation else q["ci90_noise"],
            "interval": "90 % with extrapolation error" if with_extrapolation else "90 % run noise only",
            "source": source, "notes": list(q.get("notes") or []),
            "below_floor": law_value if law_value is not None and law_value < q["value"] else None}


def _first(p: dict, name: str) -> dict | None:
    for approach in ("approach2", "approach3"):
        if name in p[approach]:
            return _entry(p[approach][name], f"{approach} {name}")
    return None


def what_if(fit: FitResult, C: float, presets: list[dict] | None = None) -> dict:
    """The answer at budget C (FLOPs): N_opt, D_opt (tokens, images), loss, FID, nearest preset, warnings, and the
    full prediction it was read from (``prediction`` = ``fit.predict(C)``)."""
    p = fit.predict(C)
    out = {"C": p["C"], "study": fit.study, "largest_fitted_C": p["largest_fitted_C"],
           "ratio_to_largest": p["ratio_to_largest"], "warnings": list(p["warnings"]),
           "N_opt": _first(p, "N_opt"), "D_opt": _first(p, "D_opt")}
    approach, name = p["headline"].get("L_opt") or ("approach2", "L_opt")
    out["loss"] = _entry(p.get(approach, {}).get(name), f"{approach} {name} (headline)") or _first(p, "L_opt")
    fid = (p["headline"].get("FID") or ("approach2", "FID"))[1]
    if fid in p["approach2"]:
        out["FID"] = _entry(p["approach2"][fid], f"approach2 {fid}" + (" (headline)" if fid != "FID" else ""))
    else:
        out["FID"] = _entry(p.get("fid_from_loss"), "FID = k·L^p through the headline loss")
    tps = fit.doc.get("tokens_per_sample")
    d = out["D_opt"]
    out["tokens_per_sample"] = tps
    out["images"] = ({**d, "value": d["value"] / tps, "ci90": [v / tps for v in d["ci90"]] if d["ci90"] else None,
                      "source": f"{d['source']} / {tps:g} tokens per sample"} if d and tps else None)
    out["preset"] = nearest_preset(presets, out["N_opt"]["value"]) if out["N_opt"] else None
    if out["preset"] and out["preset"]["at_edge"]:
        out["warnings"].append(f"N_opt is {1 / out['preset']['ratio']:.3g}x the nearest preset (depth "
                               f"{out['preset']['depth']}): no preset in the table is close")
    from_a3 = [k for k in ("N_opt", "D_opt", "loss") if out[k] and out[k]["source"].startswith("approach3")
               and "(headline)" not in out[k]["source"]]  # fell back to Approach 3 (not the fit's headline choice)
    if from_a3:
        a2 = fit.doc.get("approach2") or {}
        why = a2.get("reason") or ("it was not fitted" if a2.get("status") != "fitted" else
                                   f"it has no law for {', '.join(from_a3)}")
        out["warnings"].append(f"{', '.join(from_a3)} come from Approach 3 (the parametric L(N, D) fit), not from "
                               f"Approach 2's isoFLOP optima: {str(why).rstrip('.')}")
    out["prediction"] = p
    return out


def sig(x: float | None, digits: int = 4) -> str:
    """A number with ``digits`` significant digits (relative rounding error below 5·10^-digits)."""
    return "—" if x is None else f"{x:.{digits}g}"


def human(x: float | None) -> str:
    """1.23e9 -> '1.23B' (parameters, tokens, images)."""
    if x is None:
        return "—"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def readout(entry: dict | None) -> str:
    """What a read-out box shows: the value first (4 significant digits), then its interval."""
    if entry is None:
        return "— (not fitted)"
    ci = entry["ci90"]
    interval = f"  [{sig(ci[0])}, {sig(ci[1])}] {entry['interval']}" if ci else ""
    which = "  (Approach 3)" if entry["source"].startswith("approach3") else ""
    if entry.get("below_floor") is not None:  # FID clipped at its real-vs-real floor
        return (f"{sig(entry['value'])}  at the real-vs-real floor (the law gives {sig(entry['below_floor'])}, "
                f"below what two sets of real images measure){which}")
    return f"{sig(entry['value'])}{interval}{which}"
