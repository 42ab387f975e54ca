"""The Space's tables (header + rows of strings), from the prediction API's accessors only."""

from __future__ import annotations

from ditlaws.laws.predict import FitResult, shown_interval
from ditlaws.space.whatif import human, sig

BACKTEST_HEADERS = ["held out", "approach", "quantity", "predicted", "90 % interval", "actual", "error %", "covered",
                    "as a measurement"]


def _interval(ci) -> str:
    return f"[{sig(ci[0])}, {sig(ci[1])}]" if ci and len(ci) == 2 else "—"


def backtest_interval(r: dict) -> tuple[list[float] | None, bool | None, str]:
    """A backtest point's 90 % interval, whether it covered the measurement, and which interval that is: the one
    with extrapolation error, or run noise only where the fit had no extrapolation-error model (``ci90`` None);
    ``covered`` is the shown interval's (``covered`` or ``covered_noise`` of fit.json)."""
    return shown_interval(r)


def backtest(fit: FitResult) -> list[list[str]]:
    """One row per backtest point: predicted with its 90 % interval, measured, relative error, covered yes/no, and
    the interval for a measurement."""
    rows = []
    for r in fit.backtest_points():
        ci, covered, kind = backtest_interval(r)
        err = r.get("rel_error")
        note = "" if kind == "with extrapolation error" else f" ({kind})"
        rows.append([sig(r.get("budget")), str(r.get("approach", "?")).replace("approach", "A"),
                     str(r.get("quantity")), sig(r.get("predicted")), _interval(ci) + note, sig(r.get("actual")),
                     "—" if err is None else f"{100 * err:+.2f}", "—" if covered is None else
                     "yes" if covered else "no", _as_measurement(r)])
    return rows


def _as_measurement(r: dict) -> str:
    """The interval a measurement of the held-out optimum should fall in (the law's, widened by the measured value's
    own spread) and whether the actual value did; "—" where the fit has none."""
    ci, covered = r.get("ci90_measured"), r.get("covered_measured")
    if not ci or not isinstance(covered, bool):
        return "—"
    return f"{_interval(ci)} {'yes' if covered else 'no'}"


RUN_HEADERS = ["run", "budget", "N", "D (tokens)", "measured loss", "Approach 3", "error %"]


def runs(fit: FitResult) -> list[list[str]]:
    """Every run's measured loss beside Approach 3's prediction."""
    out = []
    for r in fit.runs_vs_approach3():
        err = (r["predicted"] - r["loss"]) / r["loss"]
        out.append([str(r["run_id"]), f"{r['budget']:.3g}" if r["budget"] else "—", human(r["N"]), human(r["D"]),
                    sig(r["loss"], 5), sig(r["predicted"], 5), f"{100 * err:+.3f}"])
    return out


EXPONENT_COLUMNS = [("approach2", "N_opt", "a (N_opt)"), ("approach2", "D_opt", "b (D_opt)"),
                    ("approach2", "L_opt", "c (L_opt)"), ("approach2", "FID", "d (FID)"),
                    ("approach3", "N_opt", "a (Approach 3)"), ("approach3", "D_opt", "b (Approach 3)")]


def exponents(fit: FitResult) -> tuple[list[str], list[list[str]]]:
    """The paper's Table 1: each study's exponents with their 90 % intervals, side by side."""
    rows = fit.exponents()
    cols = [c for c in EXPONENT_COLUMNS if any(c[1] in r[c[0]] for r in rows)]
    table = []
    for r in rows:
        cells = [r["study"]]
        for approach, name, _ in cols:
            e = r[approach].get(name)
            cells.append("—" if e is None else f"{e['exponent']:.4f} [{e['ci90'][0]:.4f}, {e['ci90'][1]:.4f}]")
        table.append(cells)
    return ["study", *(c[2] for c in cols)], table


def details(answer: dict) -> list[list[str]]:
    """Every fitted quantity at the chosen budget, both approaches (the full ``predict`` output)."""
    p = answer["prediction"]
    rows = []
    for approach in ("approach2", "approach3"):
        for name, q in p[approach].items():
            ci, noise = q.get("ci90"), q.get("ci90_noise")
            head = " (headline)" if q.get("headline") else ""
            rows.append([approach.replace("approach", "Approach "), name + head, sig(q["value"]), _interval(ci),
                         _interval(noise)])
    if p.get("fid_from_loss"):
        q = p["fid_from_loss"]
        rows.append(["FID = k·L^p", "FID", sig(q["value"]), _interval(q.get("ci90")), _interval(q.get("ci90_noise"))])
    return rows


DETAIL_HEADERS = ["approach", "quantity", "value", "90 % with extrapolation error", "90 % run noise"]
