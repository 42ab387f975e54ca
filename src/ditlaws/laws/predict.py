"""Predictions from a saved fit (fit.json) without refitting: the API behind fit_laws.py's numbers and the Space.

    from ditlaws.laws.predict import load_fit
    fit = load_fit("outputs/demo/fit/fit.json")        # or a dict already parsed
    p = fit.predict(1.5e21)
    p["approach2"]["N_opt"]  # {"value", "median", "ci90_noise", "ci95_noise", "ci90", "ci95", "notes", ...}
    p["headline"]["L_opt"]   # ["approach2", "L_opt_floor"]: which loss law the fit trusts most
    p["headline"]["FID"]     # ["approach2", "FID_floor"]: which FID law (pure, or above the floor), when FID was fitted
    fit.law_curve("N_opt", C_grid)  fit.isoflop_curves()  fit.backtest_points()  fit.runs_vs_approach3()
    fit.exponents()  fit.studies  fit.for_study("crossattn")

Each law in fit.json carries its point parameters, its bootstrap draws (float32, base64) and its extrapolation-error
model (learned from nested backtests inside the data, see ``ditlaws.laws.extrapolation``). A prediction at C is:

* ``value``: the law with the point parameters (what the report prints); ``median``: the median over draws;
* ``ci90_noise`` / ``ci95_noise``: percentiles of the draws (run noise only);
* ``ci90`` / ``ci95``: with the extrapolation error: in log space each side is the quantile of
  Normal(0, sigma² + s²·basis(C)²), sigma the side's noise (side / z), basis the misfit's shape at C (a curvature
  over the budgets the law was fitted on, or the distance beyond them, in misfits one budget step ahead), mixed
  over the error model's posterior of both (``extrapolation.misfit_scales``, ``side_quantile``). None when the
  data allowed no nested backtest. Both always contain ``value``;
* ``h``: ln(C / C_max) when C lies beyond the largest budget the law was fitted on (else 0).

Accuracy is fitted on its odds (``transform: odds``, acc / (1 - acc) = k·C^d) and returned as accuracy, every value
and interval inside (0, 1); earlier fits' ``one_minus`` laws (1 - accuracy) come back flipped and clipped to [0, 1].
FID is never predicted below ``fid_floor`` (the real-vs-real FID of the runs' extractor and sample count, when the
fit has one): a law value under it is clipped to it (``law_value`` keeps the law's own number), with a note and a
warning (the warning only where that law is the headline FID law). ``FID_floor`` (FID = F + A·C^-alpha, F that floor)
never goes below it. Nothing here refits or draws random numbers, so the numbers
are equal to fit.json's own ``predictions`` for the same budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ditlaws.errors import UserError
from ditlaws.laws import forms, parabola
from ditlaws.laws.extrapolation import misfit_scales, side_quantile

SCHEMA_VERSION = 4  # 4: error models weigh two misfit shapes, curvature and distance (issue 23); 3: curvature
FAR_FACTOR = 100.0  # warn beyond this multiple of the largest fitted budget


def load_fit(source: str | Path | dict) -> FitResult:
    """A FitResult from a fit.json path or an already parsed document. Bad input raises UserError."""
    if isinstance(source, dict):
        return FitResult(source)
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{path}: no such fit.json (run fit_laws.py --out <dir> first)")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; a fit.json is written by fit_laws.py") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: a fit.json must be a JSON object")
    return FitResult(doc, source=str(path))


def _no_constant(token: str):
    raise UserError(f"a fit.json holds no {token} (fit_laws.py writes strict JSON, null where a number is missing)")


def _check(doc: dict, source: str) -> None:
    """The fields every reader relies on: a study name, and C_max / C_min finite numbers > 0 or null."""
    if not isinstance(doc.get("study"), str) or not doc["study"]:
        raise UserError(f"{source}: fit.json has no 'study' (the study's name, a string); a fit.json written by "
                        f"fit_laws.py names its study")
    for key in ("C_max", "C_min"):
        v = doc.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0):
            raise UserError(f"{source}: fit.json '{key}' must be a number of FLOPs > 0 or null, got {v!r}")
    for key in ("approach2", "approach3"):
        if doc.get(key) is not None and not isinstance(doc[key], dict):
            raise UserError(f"{source}: fit.json '{key}' must be an object or null, got {type(doc[key]).__name__}")


def clip_at_floor(q: dict, floor: float) -> dict:
    """A quantity's value, median and interval bounds raised to ``floor`` (FID's real-vs-real floor), in place and
    in the types they came in (scalars, lists or arrays); ``law_value`` keeps the law's own value."""
    q["law_value"] = np.asarray(q["value"], dtype=float).copy()
    if np.ndim(q["law_value"]) == 0:
        q["law_value"] = float(q["law_value"])
    with np.errstate(invalid="ignore"):
        for key in ("value", "median", "ci90_noise", "ci95_noise", "ci90", "ci95"):
            v = q.get(key)
            if v is None or (isinstance(v, list) and None in v):
                continue
            arr = np.asarray(v, dtype=float)
            clipped = np.where(np.isfinite(arr), np.maximum(arr, floor), arr)
            if not isinstance(v, np.ndarray):
                clipped = clipped.tolist() if isinstance(v, list) else float(clipped)
            q[key] = clipped
    q["floor"] = floor
    return q


class FitResult:
    """One study's fit read from fit.json (the headline study; ``for_study`` gives the others)."""

    def __init__(self, doc: dict, source: str = "<dict>", root: dict | None = None):
        version = doc.get("schema_version", (root or {}).get("schema_version"))
        if version != SCHEMA_VERSION:
            raise UserError(f"{source}: fit.json schema_version {version!r}; this ditlaws reads {SCHEMA_VERSION} "
                            f"(refit with fit_laws.py)")
        _check(doc, source)
        self.doc, self.source, self.root = doc, source, root or doc

    # ------------------------------------------------------------------ what was fitted
    @property
    def study(self) -> str:
        return self.doc["study"]

    @property
    def studies(self) -> list[str]:
        return [self.root["study"]] + [s["study"] for s in self.root.get("studies") or []]

    def for_study(self, name: str) -> FitResult:
        for doc in [self.root, *(self.root.get("studies") or [])]:
            if doc["study"] == name:
                return FitResult(doc, self.source, self.root)
        raise UserError(f"study {name!r} not in {self.source}; studies: {', '.join(self.studies)}")

    @property
    def largest_budget(self) -> float | None:
        """The largest compute of the runs the laws were fitted on."""
        return self.doc.get("C_max")

    @property
    def headline(self) -> dict[str, list[str]]:
        return self.doc.get("headline") or {}

    def laws(self, approach: str = "approach2") -> dict[str, dict]:
        block = self.doc.get(approach) or {}
        return block.get("laws") or {} if block.get("status") == "fitted" else {}

    # ------------------------------------------------------------------ predictions
    def predict(self, C: float) -> dict:
        """Every fitted quantity at compute C (FLOPs): see the module docstring for the fields."""
        C = float(C)
        if not (np.isfinite(C) and C > 0):
            raise UserError(f"budget must be a finite number of FLOPs > 0, got {C!r}")
        out = {"C": C, "largest_fitted_C": self.largest_budget, "warnings": [], "headline": self.headline}
        c_max = self.largest_budget
        out["ratio_to_largest"] = C / c_max if c_max else None
        if c_max and C > FAR_FACTOR * c_max:
            out["warnings"].append(f"C = {C:.3g} is {C / c_max:.0f}x the largest fitted budget {c_max:.3g}: "
                                   f"beyond {FAR_FACTOR:.0f}x the laws are untested; treat the intervals as a guide")
        for approach in ("approach2", "approach3"):
            out[approach] = {name: pick(self.quantity(approach, name, [C]), 0) for name in self.laws(approach)}
        self._mark(out)
        pairing = self.doc.get("loss_to_fid")
        if pairing and pairing.get("status") == "fitted":
            out["fid_from_loss"] = self._fid_from_loss(pairing, C)
        fid_head = self.headline.get("FID", ["approach2", "FID"])
        for label, q in (("FID", out["approach2"].get("FID")), ("FID from the loss", out.get("fid_from_loss"))):
            if q and q.get("law_value") is not None and q["law_value"] < q["value"]:
                f = self.fid_floor
                note = (f"the law gives FID {q['law_value']:.4g}, below the real-vs-real floor {f['value']:.4g} "
                        f"(two sets of real images, the runs' own feature extractor and sample count); no model can "
                        f"be expected to measure less, so the prediction is clipped to the floor")
                q["notes"].append(note)
                if (label == "FID" and fid_head == ["approach2", "FID"]) or "FID" not in out["approach2"]:
                    out["warnings"].append(f"{label}: {note}")  # one warning for one floor, not when another law leads
        return out

    @property
    def fid_floor(self) -> dict | None:
        """{"value", ...}: the smallest real-vs-real FID of the fit's runs, or None when they carry none."""
        f = self.doc.get("fid_floor")
        v = f.get("value") if isinstance(f, dict) else None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0
        return f if ok else None

    def _floored(self, q: dict) -> dict:
        """FID arrays clipped at the floor (value, median, every interval bound); ``law_value`` keeps the law's."""
        floor = self.fid_floor
        if floor is None:
            q["law_value"] = np.asarray(q["value"], dtype=float).copy()
            return q
        return clip_at_floor(q, float(floor["value"]))

    def quantity(self, approach: str, name: str, C) -> dict:
        """One law at an array of budgets: the same fields as ``predict`` but each an array over C."""
        law = self.laws(approach).get(name)
        if law is None:
            raise UserError(f"no law {name!r} in {approach} of study {self.study!r}; "
                            f"fitted: {', '.join(self.laws(approach)) or 'none'}")
        q = law_summary(law, C, self.doc.get("approach3"))
        return self._floored(q) if law["quantity"] == "FID" else q

    def law_curve(self, name: str, C, approach: str = "approach2") -> dict:
        """What the Space plots for a law: its value, median and bands over a grid of C, and the fitted points."""
        q = self.quantity(approach, name, C)
        law = self.laws(approach)[name]
        q["C"] = np.atleast_1d(np.asarray(C, dtype=float))
        q["points"] = law.get("fitted_on") or {"C": [], "value": []}
        q["label"] = law.get("label", name)
        return q


    def _mark(self, out: dict) -> None:
        """Headline flags, and a note wherever a pure-law loss lies below a fitted floor."""
        head = self.headline.get("L_opt")
        for approach in ("approach2", "approach3"):
            if "L_opt" in out[approach]:
                out[approach]["L_opt"]["headline"] = head == [approach, "L_opt"]
        if "L_opt_floor" in out["approach2"]:
            out["approach2"]["L_opt_floor"]["headline"] = head == ["approach2", "L_opt_floor"]
        fid_head = self.headline.get("FID")
        for name in ("FID", "FID_floor"):
            if fid_head and name in out["approach2"]:
                out["approach2"][name]["headline"] = fid_head == ["approach2", name]
        pure = out["approach2"].get("L_opt")
        if pure is None:
            return
        floors = []
        if "L_opt_floor" in self.laws():
            floors.append(("the floor law's E", self.laws()["L_opt_floor"]["params"]["E"]))
        a3 = self.doc.get("approach3") or {}
        if a3.get("status") == "fitted":
            floors.append(("Approach 3's E", a3["params"]["E"]))
        if head == ["approach2", "L_opt"]:
            others = [(n, out[a]["L_opt" if a == "approach3" else "L_opt_floor"]["value"]) for a, n in
                      (("approach2", "the floor law's"), ("approach3", "Approach 3's")) if
                      ("L_opt_floor" if a == "approach2" else "L_opt") in out[a]]
            advice = "; ".join(f"{n} L_opt = {v:.4g}" for n, v in others if v is not None)
            advice = f"read it as unreachable: {advice} is the safer estimate" if advice else \
                "read it as unreachable"
        else:
            advice = "prefer the headline law"
        for what, E in floors:
            if E is not None and pure["value"] < E:
                note = (f"the pure power law's loss {pure['value']:.4g} lies below {what} = {E:.4g}, which no "
                        f"model can reach; {advice}")
                pure["notes"].append(note)
                out["warnings"].append(f"L_opt (pure power law): {note}")

    def _fid_from_loss(self, pairing: dict, C: float) -> dict:
        """FID from the headline loss prediction through the fitted pairing FID = k·L^p (the paper's Fig. 3)."""
        approach, name = self.headline.get("L_opt") or ["approach2", "L_opt"]
        law = self.laws(approach).get(name)
        if law is None:
            return {}
        point_l, draws_l = law_values(law, np.array([C]), self.doc.get("approach3"))
        loss_q = pick(law_summary(law, [C], self.doc.get("approach3")), 0)
        p = np.array([pairing["params"][k] for k in forms.POWER_PARAMS])
        pd = forms.decode_draws(pairing["draws"])
        n = min(len(pd), len(draws_l))
        fid = lambda loss, params: np.exp(params[..., 0] + params[..., 1] * np.log(loss))
        value = float(fid(point_l[0], p))
        draws = fid(draws_l[:n, 0], pd[:n])
        out = {"value": value, **_percentiles(draws), "notes": ["FID = k·L^p through the headline loss law"]}
        out["ci90"] = sorted(float(fid(v, p)) for v in loss_q["ci90"]) if loss_q["ci90"] else None
        if out["ci90"]:
            out["ci90"] = [min(out["ci90"][0], value), max(out["ci90"][1], value)]
        arrays = {k: (None if v is None else np.atleast_1d(np.asarray(v, dtype=float)))
                  for k, v in out.items() if k in ("value", "median", "ci90_noise", "ci95_noise", "ci90")}
        arrays = self._floored({k: (v[None, :] if v is not None and k != "value" and k != "median" else v)
                                for k, v in arrays.items()})
        return {**out, **pick(arrays, 0)}

    # ------------------------------------------------------------------ what the Space plots
    def isoflop_curves(self, n: int = 100) -> list[dict]:
        """Per budget group: its runs (N, loss), its parabola over the sampled sizes, and its optimum."""
        out = []
        for b in (self.doc.get("approach2") or {}).get("budgets") or []:
            runs = b.get("runs") or {}
            entry = {"budget": b["budget"], "C": b["C"], "used": b["used"], "flags": b["flags"],
                     "N": runs.get("N", []), "loss": runs.get("loss", []), "run_id": runs.get("run_id", []),
                     "optimum": {"N": b["N_opt"], "D": b["D_opt"], "L": b["L_opt"]} if b["used"] else None,
                     "curve": None}
            par = b.get("parabola")
            if par and runs.get("N"):
                x = np.log(np.asarray(runs["N"], dtype=float))
                grid = np.linspace(x.min(), x.max(), n)
                entry["curve"] = {"N": np.exp(grid).tolist(),
                                  "loss": parabola.evaluate(par["coef_u"], grid, par["centre_lnN"],
                                                            par["scale_lnN"]).tolist()}
            out.append(entry)
        return out

    def backtest_points(self) -> list[dict]:
        """Held-out budgets predicted from the smaller ones: predicted vs actual with both 90 % intervals."""
        rows = []
        for bt in self.doc.get("backtest") or []:
            for name, q in bt["quantities"].items():
                rows.append({"holdout": bt["holdout"], "budget": bt["budget"], "C": bt["C"], "approach": bt["approach"],
                             "quantity": name, **q})
        return rows

    def runs_vs_approach3(self) -> list[dict]:
        """Every run's measured loss against Approach 3's L(N, D), with its budget group."""
        a3 = self.doc.get("approach3") or {}
        runs = a3.get("runs")
        if a3.get("status") != "fitted" or not runs:
            return []
        keys = ("run_id", "budget", "C", "N", "D", "loss", "predicted")
        return [dict(zip(keys, row)) for row in zip(*(runs[k] for k in keys))]

    def exponents(self) -> list[dict]:
        """Per study: each law's exponent with its 90 % interval (Approach 2; Approach 3's N and D exponents)."""
        rows = []
        for name in self.studies:
            sub = self.for_study(name)
            row = {"study": name, "approach2": {}, "approach3": {}}
            for law_name, law in sub.laws("approach2").items():
                if law["form"] == "power":
                    s = law["summary"]["exponent"]
                    row["approach2"][law_name] = {"exponent": law["params"]["exponent"], "median": s["median"],
                                                  "ci90": s["ci90"], "ci95": s["ci95"]}
            a3 = sub.doc.get("approach3") or {}
            if a3.get("status") == "fitted":
                for q in ("N_opt", "D_opt"):
                    s = a3["summary"][f"exponent_{q}"]
                    row["approach3"][q] = {"exponent": a3["exponents"][q], "median": s["median"], "ci90": s["ci90"],
                                           "ci95": s["ci95"]}
            rows.append(row)
        return rows


def shown_interval(row: dict) -> tuple[list | None, bool | None, str]:
    """The 90 % interval a backtest row is shown with, whether the measurement lies inside it, and its kind: the
    interval with extrapolation error where the refit had a model of it (``covered``), else the noise-only one
    (``covered_noise``). What the report, the figures and the Space show and count; (None, None, ...) when neither
    interval exists."""
    if row.get("ci90"):
        return row["ci90"], _covered(row.get("covered"), row["ci90"], row.get("actual")), "with extrapolation error"
    ci = row.get("ci90_noise")
    if ci and ci[0] is not None and ci[1] is not None:
        return ci, _covered(row.get("covered_noise"), ci, row.get("actual")), "run noise only"
    return None, None, "no interval"


def _covered(flag, ci, actual) -> bool | None:
    if isinstance(flag, bool):
        return flag
    if actual is None or ci[0] is None or ci[1] is None:
        return None
    return bool(ci[0] <= actual <= ci[1])


# ---------------------------------------------------------------------- shared arithmetic


def law_values(law: dict, C, approach3: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(point [nC], draws [R, nC]) of a law dict in its fitted space (e.g. 1 - accuracy). Approach 3's laws take
    their parameters from the ``approach3`` block (theta and its draws)."""
    C = np.atleast_1d(np.asarray(C, dtype=float))
    if law["form"] == "parametric":
        theta = np.asarray(approach3["theta"], dtype=float)
        draws = forms.decode_draws(approach3["draws"])
        return (forms.parametric_optimum(theta, C)[law["quantity"]],
                forms.parametric_optimum(draws, C)[law["quantity"]])
    names = forms.POWER_PARAMS if law["form"] == "power" else forms.FLOOR_PARAMS
    point = np.array([law["params"][k] for k in names])
    return forms.evaluate(law["form"], point, C), forms.evaluate(law["form"], forms.decode_draws(law["draws"]), C)


def law_summary(law: dict, C, approach3: dict | None = None) -> dict:
    """Every field of a prediction (arrays over C) for one law dict: the one computation behind all of them."""
    C = np.atleast_1d(np.asarray(C, dtype=float))
    point, draws = law_values(law, C, approach3)
    return _summary(point, draws, law, C)


def _percentiles(draws: np.ndarray) -> dict:
    """Median and 90 % / 95 % percentile intervals over the finite draws (axis 0)."""
    d = np.asarray(draws, dtype=float)
    if d.ndim == 1:
        return pick(_percentiles(d[:, None]), 0)
    ok = np.isfinite(d)
    q = np.full((5, d.shape[1]), np.nan)
    cols = ok.any(axis=0)
    if cols.any():
        q[:, cols] = np.nanpercentile(np.where(ok, d, np.nan)[:, cols], [50, 5, 95, 2.5, 97.5], axis=0)
    return {"median": q[0], "ci90_noise": np.stack([q[1], q[2]], -1), "ci95_noise": np.stack([q[3], q[4]], -1),
            "n_draws": ok.sum(axis=0)}


Z_SIDE = {"90": 1.6448536269514722, "95": 1.959963984540054}  # standard normal quantiles of one side


def _widen(point, lo, hi, scales, weights, level: str) -> tuple[np.ndarray, np.ndarray]:
    """The predictive interval: each side's noise sigma (from the noise-only interval) combined with the misfit's
    scales at C, integrated over the error model's posterior (``extrapolation.side_quantile``)."""
    lp = np.log(point)
    z = Z_SIDE[level]
    p = 0.5 + float(level) / 200
    sig_lo = np.maximum(lp - np.log(lo), 0.0) / z
    sig_hi = np.maximum(np.log(hi) - lp, 0.0) / z
    d_lo = side_quantile(sig_lo, scales, weights, p)
    d_hi = side_quantile(sig_hi, scales, weights, p)
    return np.exp(lp - d_lo), np.exp(lp + d_hi)


def _summary(point: np.ndarray, draws: np.ndarray, law: dict, C: np.ndarray) -> dict:
    """Point, percentiles and extrapolation-widened intervals (arrays over C), in the quantity's own units."""
    with np.errstate(all="ignore"):
        out = _percentiles(draws)
    out["value"] = np.asarray(point, dtype=float)
    em = law.get("error_model") or {"status": "none"}
    c_max = law.get("C_max") or float(np.max(C))
    out["h"] = np.maximum(np.log(C / c_max), 0.0)
    scales, weights = misfit_scales(em, np.log(C)) if em.get("status") == "ok" else (None, None)
    notes = []
    for level in ("90", "95"):
        lo, hi = out[f"ci{level}_noise"][..., 0], out[f"ci{level}_noise"][..., 1]
        if em.get("status") == "ok":
            with np.errstate(all="ignore"):
                lo_w, hi_w = _widen(out["value"], np.where(np.isfinite(lo), lo, out["value"]),
                                    np.where(np.isfinite(hi), hi, out["value"]), scales, weights, level)
            out[f"ci{level}"] = np.stack([lo_w, hi_w], -1)
        else:
            out[f"ci{level}"] = None
    bias = forms.a2_bias_at(law.get("a2_bias"), C)
    if bias is not None:  # Approach 2's own bias, not corrected: the interval also covers the value without it
        for level in ("90", "95"):
            iv = out[f"ci{level}"]
            if iv is not None:
                shifted = iv * np.exp(-bias)[..., None]
                out[f"ci{level}"] = np.stack([np.minimum(iv[..., 0], shifted[..., 0]),
                                              np.maximum(iv[..., 1], shifted[..., 1])], -1)
        out["a2_bias"] = bias
    if em.get("status") != "ok":
        notes.append(f"no extrapolation-error model ({em.get('note', 'too few budgets for a nested backtest')}); "
                     f"the intervals carry run noise only")
    out["extrapolation_s"] = em.get("s")
    out["notes"] = notes
    if law.get("transform") == "odds":
        out = _odds(out)
    elif law.get("transform") == "one_minus":
        out = _one_minus(out)
    return out


def _odds(q: dict) -> dict:
    """A quantity fitted on its odds, back in the metric's units: odds / (1 + odds), monotone, inside (0, 1)."""
    from ditlaws.laws.metrics import from_fitted

    out = dict(q)
    for key in ("value", "median", "ci90_noise", "ci95_noise", "ci90", "ci95"):
        if q[key] is not None:
            out[key] = from_fitted("odds", q[key])
    return out


def _one_minus(q: dict) -> dict:
    """A quantity fitted as 1 - metric, back in the metric's units (intervals flipped)."""
    out = dict(q)
    out["value"], out["median"] = 1 - q["value"], 1 - q["median"]
    for key in ("ci90_noise", "ci95_noise", "ci90", "ci95"):
        if q[key] is not None:
            out[key] = np.clip(1 - q[key][..., ::-1], 0.0, 1.0)  # a value is in [0, 1] whatever the law says
    return out


def pick(q: dict, i: int) -> dict:
    """Element i of an array-valued quantity, as plain Python values (JSON-ready)."""
    out = {}
    for k, v in q.items():
        if isinstance(v, np.ndarray):
            v = v[i] if v.ndim >= 1 and v.shape[0] > i else v
            v = [_plain(x) for x in v] if isinstance(v, np.ndarray) and v.ndim == 1 else _plain(v)
        out[k] = v
    return out


def _plain(x):
    if isinstance(x, (np.integer, int)) and not isinstance(x, bool):
        return int(x)
    x = float(x)
    return x if np.isfinite(x) else None
