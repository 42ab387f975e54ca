"""The Space's figures (matplotlib, log axes), drawn from the prediction API's accessors only:
``backtest_points()``, ``runs_vs_approach3()``, ``isoflop_curves()``, ``law_curve()`` (through ``laws.plots.law_panel``)
and ``predict()``. Each function returns a ``matplotlib.figure.Figure`` (no pyplot state: the app serves threads)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ditlaws.laws.plots import law_panel, plain_log_ticks
from ditlaws.laws.predict import FitResult
from ditlaws.space.tables import backtest_interval

ORDER = ("N_opt", "D_opt", "L_opt", "L_opt_floor", "FID", "FID_floor")
APPROACH_COLOR = {"approach2": "C0", "approach3": "C2"}


def _grid(n: int, width: float = 4.2, height: float = 3.6) -> tuple[Figure, list]:
    cols = n if n <= 3 else 2 if n == 4 else 3
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows))
    # fixed margins (a layout engine costs seconds per render on a busy CPU)
    w, h = width * cols, height * rows
    fig.subplots_adjust(left=0.95 / w, right=1 - 0.2 / w, bottom=0.7 / h, top=1 - 0.45 / h, wspace=0.4, hspace=0.5)
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _identity_line(ax, values) -> None:
    vals = [v for v in values if v is not None and v > 0]
    if vals:
        lo, hi = min(vals) / 1.03, max(vals) * 1.03
        ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1, label="y = x")


def _lean(fig: Figure) -> Figure:
    """No minor ticks: on log axes they are most of the drawing time (the major ticks carry the labels, and
    ``plain_log_ticks`` adds plain-decimal majors where a range is narrow)."""
    for ax in fig.axes:
        for axis in ("x", "y"):
            if (ax.get_xscale() if axis == "x" else ax.get_yscale()) == "log":
                plain_log_ticks(ax, axis)  # labelled majors where the range is under a decade or so
        ax.minorticks_off()
    return fig


def _empty(message: str) -> Figure:
    fig = Figure(figsize=(8, 2.2))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True)
    return fig


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def _bar(value: float, ci) -> list[list[float]]:
    """Error-bar lengths [[below], [above]] of an interval about ``value``: never negative (an interval bound may lie
    on the value, or a rounding step past it), zero where the interval is missing or not finite."""
    if not ci or len(ci) != 2 or not all(_positive(v) for v in ci):
        return [[0.0], [0.0]]
    return [[max(value - min(ci), 0.0)], [max(max(ci) - value, 0.0)]]


def _drawable(r: dict) -> bool:
    return _positive(r.get("actual")) and _positive(r.get("predicted"))


def _in_order(name: str) -> tuple[int, str]:
    """ORDER's laws first, in its order (each floor law beside its pure one); the rest by name."""
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def predicted_vs_actual(fit: FitResult) -> Figure:
    """Every backtest point: the held-out budget's measured value (x, its 90 % interval) against the value the
    smaller budgets predicted (y, its 90 % interval with extrapolation error, or run noise only where the fit had no
    model of it), one panel per quantity. Points without a finite positive value are left out (the table lists
    them)."""
    rows = [r for r in fit.backtest_points() if _drawable(r)]
    names = sorted({str(r["quantity"]) for r in rows}, key=_in_order)
    if not names:
        return _empty("No backtest: the fit had too few budgets to hold the largest one out."
                      if not fit.backtest_points() else "No backtest point has a finite positive value to draw.")
    fig, axes = _grid(len(names))
    kinds = set()
    for ax, name in zip(axes, names):
        values = []
        for approach in ("approach2", "approach3"):
            sel = [r for r in rows if r["quantity"] == name and r.get("approach") == approach]
            for i, r in enumerate(sel):
                ci, covered, kind = backtest_interval(r)
                kinds.add(kind)
                a3 = approach == "approach3"  # drawn under Approach 2, hollow and thicker, so both show
                ax.errorbar([r["actual"]], [r["predicted"]], yerr=_bar(r["predicted"], ci),
                            xerr=_bar(r["actual"], r.get("actual_ci90")), fmt="X" if covered is False else "o",
                            color=APPROACH_COLOR.get(approach, "C1"), capsize=5 if a3 else 3, ms=10 if a3 else 5,
                            mfc="none" if a3 else None, elinewidth=3.5 if a3 else 1.2, alpha=0.55 if a3 else 1,
                            zorder=2 if a3 else 3, label=approach.replace("approach", "Approach ") if i == 0 else None)
                values += [v for v in (r["actual"], r["predicted"], *(ci or []), *(r.get("actual_ci90") or []))
                           if _positive(v)]
        _identity_line(ax, values)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"actual {name} (held-out budget)")
        ax.set_ylabel(f"predicted {name}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig = _lean(fig)
    for ax in axes:  # narrow ranges get plain-decimal ticks, which need room side by side
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    which = ("with extrapolation error" if kinds == {"with extrapolation error"} else
             "run noise only (too few budgets for an extrapolation-error model)" if "with extrapolation error"
             not in kinds else "with extrapolation error where the fit has a model of it, else run noise only")
    fig.suptitle(f"{fit.study}: predicted vs measured at held-out budgets, 90 % intervals {which}; "
                 "o covered, X missed", fontsize=10)
    return fig


def runs_vs_approach3(fit: FitResult) -> Figure:
    """Every run's measured loss against Approach 3's L(N, D) prediction, coloured by budget."""
    runs = fit.runs_vs_approach3()
    if not runs:
        return _empty("Approach 3 (the parametric L(N, D) fit) was not fitted.")
    fig = Figure(figsize=(6.2, 4.6), layout="tight")
    ax = fig.subplots()
    budgets = np.log10([r["budget"] if r["budget"] else r["C"] for r in runs])
    sc = ax.scatter([r["loss"] for r in runs], [r["predicted"] for r in runs], c=budgets, cmap="viridis", s=18)
    _identity_line(ax, [v for r in runs for v in (r["loss"], r["predicted"])])
    fig.colorbar(sc, ax=ax, label="log10 budget (FLOPs)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured loss")
    ax.set_ylabel("Approach 3 prediction L(N, D)")
    ax.set_title(f"{fit.study}: every run ({len(runs)}) against the parametric fit", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    return _lean(fig)


def isoflop(fit: FitResult) -> Figure:
    """Each budget's runs (loss against N), its fitted parabola in ln N and its optimum (a star)."""
    curves = fit.isoflop_curves()
    if not curves:
        return _empty("No isoFLOP budgets in this fit.")
    fig = Figure(figsize=(7.5, 4.8), layout="tight")
    ax = fig.subplots()
    colours = ([f"C{i}" for i in range(len(curves))] if len(curves) <= 10 else
               [tuple(c) for c in colormaps["viridis"](np.linspace(0, 1, len(curves)))])
    for colour, c in zip(colours, curves):
        tag = "" if c["used"] else " (not used: " + ", ".join(c["flags"]) + ")"
        ax.scatter(c["N"], c["loss"], color=colour, s=16, marker="o" if c["used"] else "x",
                   label=f"C = {c['budget']:.2g}{tag}")
        if c["curve"]:
            ax.plot(c["curve"]["N"], c["curve"]["loss"], color=colour, lw=1.2, ls="-" if c["used"] else ":")
        if c["optimum"]:
            ax.scatter([c["optimum"]["N"]], [c["optimum"]["L"]], color=colour, marker="*", s=150,
                       edgecolors="k", linewidths=0.6, zorder=4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("loss")
    ax.set_title(f"{fit.study}: isoFLOP curves, parabolas in ln N and their optima (stars)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if len(curves) <= 16:
        ax.legend(fontsize=7, loc="upper right")
    return _lean(fig)


def _mark(ax, fit: FitResult, approach: str, name: str, C: float | None) -> None:
    if C is None:
        return
    q = fit.predict(C)[approach].get(name)
    if q and q["value"] is not None:
        ci = q["ci90"] or q["ci90_noise"]
        if ci and None not in ci:
            ax.vlines(C, ci[0], ci[1], color="darkorange", lw=2.5, zorder=6)
        ax.scatter([C], [q["value"]], marker="D", color="darkorange", s=60, zorder=7, label=f"your budget {C:.3g}")
        ax.legend(fontsize=6.5, loc="best", framealpha=0.85)


def laws(fit: FitResult, C: float | None = None) -> Figure:
    """The power laws with their 90 % bands (run noise, and with extrapolation error), the fitted budget optima,
    fit.json's own prediction targets (red stars) and the chosen budget (orange)."""
    panels = [("approach2", n) for n in sorted(fit.laws("approach2"), key=_in_order)]
    panels += [("approach3", n) for n in fit.laws("approach3") if ("approach2", n) not in panels]
    if not panels:
        return _empty("No power law was fitted.")
    fig, axes = _grid(len(panels), 4.6, 3.8)
    for ax, (approach, name) in zip(axes, panels):
        law_panel(ax, fit, name, approach, color=APPROACH_COLOR[approach], points=approach == "approach2")
        if approach == "approach3":
            ax.set_title(f"{name} (Approach 3)", fontsize=9)
        floor = fit.fid_floor if fit.laws(approach)[name].get("quantity") == "FID" else None
        if floor:  # what two sets of real images measure: no FID prediction goes below it
            ax.axhline(floor["value"], color="k", ls="--", lw=1, label=f"real-vs-real floor {floor['value']:.4g}")
            lo, hi = ax.get_ylim()
            ax.set_ylim(min(lo, floor["value"] / 1.2), max(hi, floor["value"] * 1.2))
        _mark(ax, fit, approach, name, C)
    return _lean(fig)


def compare(fit: FitResult) -> Figure:
    """The studies' N_opt, D_opt and L_opt laws on shared axes."""
    subs = [fit.for_study(s) for s in fit.studies]
    names = [n for n in ("N_opt", "D_opt", "L_opt") if all(n in s.laws() for s in subs)]
    if len(subs) < 2 or not names:
        return _empty("One study only: nothing to compare.")
    fig, axes = _grid(len(names), 4.8, 3.9)
    for ax, name in zip(axes, names):
        for i, sub in enumerate(subs):
            law_panel(ax, sub, name, color=f"C{i}", prefix=f"{sub.study}: ")
    return _lean(fig)
