"""Figures in the paper's style (PNG, log axes, matplotlib Agg), drawn from fit.json through the prediction API,
so every curve and band is the one ``ditlaws.laws.predict`` returns. Each function writes one file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from ditlaws.laws.predict import FitResult, load_fit  # noqa: E402


def save_figure(fig, path: Path, dpi: int = 120) -> None:
    """A PNG written atomically (a full disk leaves the earlier figure, never half of one)."""
    from ditlaws.jsonio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def plain_log_ticks(ax, axis: str = "y") -> None:
    """Log axis labelled in plain decimals (0.2, 0.3, 0.5) rather than powers of ten, for narrow ranges."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = (ax.get_ylim() if axis == "y" else ax.get_xlim())
    if hi / lo > 30:
        return
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    target.set_minor_formatter(NullFormatter())


def _targets(fit: FitResult) -> list[float]:
    return [p["C"] for p in fit.doc.get("predictions") or []]


def _span(fit: FitResult) -> tuple[float, float]:
    """The compute range a law panel spans: the fitted runs (C_min .. C_max, or the laws' own fitted budgets where
    fit.json lacks them) and the prediction targets."""
    fitted = [fit.doc.get("C_min"), fit.doc.get("C_max")]
    for approach in ("approach2", "approach3"):
        for law in fit.laws(approach).values():
            fitted += [*(law.get("fitted_on") or {}).get("C", []), law.get("C_max")]
    Cs = [c for c in [*fitted, *_targets(fit)] if isinstance(c, (int, float)) and np.isfinite(c) and c > 0]
    return (min(Cs), max(Cs)) if Cs else (1e15, 1e21)


def _grid(fit: FitResult) -> np.ndarray:
    lo, hi = _span(fit)
    return np.geomspace(lo / 1.5, hi * 1.5, 120)


BOUNDED = ("odds", "one_minus")  # transforms of metrics that live in [0, 1] (accuracy)


def _finite_positive(values) -> np.ndarray:
    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=object)) if x is not None], dtype=float)
    return v[np.isfinite(v) & (v > 0)]


def law_panel(ax, fit: FitResult, name: str, approach: str = "approach2", color: str = "C0", prefix: str = "",
              points: bool = True, band_labels: bool = True, annotate: bool = True) -> None:
    """A law with its noise-only band, its band with extrapolation error, its fitted points and predictions
    (``annotate``: their values written beside them; one law per panel should, or the numbers overlap).

    A bounded metric (accuracy) is drawn on a linear [0, 1] axis from its smallest fitted budget on: its law is not
    drawn backwards past the data. A log axis spans the curve, the points and the predictions' intervals, at most
    a decade beyond the curve and the points (a wide band runs off the edge rather than squashing the law)."""
    law = fit.laws(approach)[name]
    bounded = law.get("transform") in BOUNDED
    grid = _grid(fit)
    fitted_C = _finite_positive((law.get("fitted_on") or {}).get("C", []))
    if bounded and len(fitted_C):
        grid = grid[grid >= fitted_C.min()]
        grid = np.concatenate([[fitted_C.min()], grid]) if not len(grid) or grid[0] > fitted_C.min() else grid
    q = fit.law_curve(name, grid, approach)
    label = f"{prefix}{_formula(law)}"
    clip = (lambda v: np.clip(v, 0.0, 1.0)) if bounded else (lambda v: v)
    ax.plot(grid, clip(q["value"]), color=color, label=label)
    if q["ci90"] is not None:
        ax.fill_between(grid, clip(q["ci90"][:, 0]), clip(q["ci90"][:, 1]), color=color, alpha=0.12, lw=0,
                        label="90 % with extrapolation error" if band_labels else None)
    ax.fill_between(grid, clip(q["ci90_noise"][:, 0]), clip(q["ci90_noise"][:, 1]), color=color, alpha=0.3, lw=0,
                    label="90 % run noise" if band_labels else None)
    core = [*np.ravel(q["value"]), *q["points"]["value"]] if points else list(np.ravel(q["value"]))
    wide = []
    if points and q["points"]["C"]:
        ax.scatter(q["points"]["C"], q["points"]["value"], color=color, zorder=3, s=22, edgecolors="k",
                   linewidths=0.5, label=f"{prefix}budget optima")
    for C in _targets(fit):
        p = fit.predict(C)[approach].get(name)
        if not p or p["value"] is None:
            continue
        iv = p["ci90"] or p["ci90_noise"]
        if iv and iv[0] is not None and iv[1] is not None:
            ax.vlines(C, iv[0], iv[1], color="crimson", lw=2, zorder=4)
            wide += iv
        ax.scatter([C], [p["value"]], marker="*", color="crimson", s=120, zorder=5)
        if annotate:
            below = bounded and p["value"] > 0.85  # under the point: above it is the frame
            ax.annotate(f"{p['value']:.3g}", (C, p["value"]), textcoords="offset points",
                        xytext=(-7, -12 if below else 7), ha="right", fontsize=7.5, color="crimson")
        core.append(p["value"])
    ax.set_xscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel(law.get("label", name))
    ax.grid(True, which="both", alpha=0.3)
    if bounded:
        ax.set_ylim(*_unit_limits(core + wide))
    else:
        ax.set_yscale("log")
        limits = _log_limits(core, wide)
        if limits:
            ax.set_ylim(*limits)
        plain_log_ticks(ax)
    ax.legend(fontsize=6.5, loc="best", framealpha=0.85)


def _unit_limits(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    lo = max(0.0, float(v.min()) - 0.05) if len(v) else 0.0
    return (0.0 if lo < 0.15 else lo), 1.02


def _log_limits(core, wide, reach: float = 10.0) -> tuple[float, float] | None:
    """Log-axis limits over ``core`` (curve, points, predictions) and ``wide`` (their intervals), the intervals
    shown to at most ``reach`` times beyond the core's range."""
    c = _finite_positive(core)
    if not len(c):
        return None
    lo, hi = c.min(), c.max()
    w = _finite_positive(wide)
    if len(w):
        lo, hi = max(min(lo, w.min()), lo / reach), min(max(hi, w.max()), hi * reach)
    pad = (hi / lo) ** 0.04 if hi > lo else 1.1
    return lo / pad, hi * pad


def _formula(law: dict) -> str:
    if law["form"] == "power" and law.get("transform") == "odds":
        return f"odds = {law['coef']:.3g}·C^{law['exponent']:.4f}"
    if law["form"] == "power":
        return f"{law['coef']:.4g}·C^{law['exponent']:.4f}"
    if law["form"] == "floor":
        return f"{law['E']:.4g} + {law['A']:.3g}·C^-{law['alpha']:.4f}"
    return f"{law['quantity']} (Approach 3)"


def isoflop_figure(fit: FitResult, path: Path) -> Path:
    """Fig. 1 style: isoFLOP curves with parabolas and optima; N_opt and D_opt against C with their bands."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    curves = fit.isoflop_curves()
    cmap = plt.get_cmap("viridis")
    for i, c in enumerate(curves):
        color = cmap(i / max(len(curves) - 1, 1))
        axes[0].scatter(c["N"], c["loss"], color=color, s=14, marker="o" if c["used"] else "x",
                        label=f"{c['budget']:.2g}" + ("" if c["used"] else " (excluded)"))
        if c["curve"]:
            axes[0].plot(c["curve"]["N"], c["curve"]["loss"], color=color, lw=1, ls="-" if c["used"] else ":")
        if c["optimum"]:
            axes[0].scatter([c["optimum"]["N"]], [c["optimum"]["L"]], color=color, marker="*", s=120,
                            edgecolors="k", zorder=4)
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("parameters N")
    axes[0].set_ylabel("loss")
    axes[0].set_title(f"isoFLOP curves — {fit.study}")
    if len(curves) <= 20:
        axes[0].legend(fontsize=7, title="budget (FLOPs)", title_fontsize=7, loc="upper right")
    axes[0].grid(True, which="both", alpha=0.3)
    plain_log_ticks(axes[0])
    for ax, name in zip(axes[1:], ("N_opt", "D_opt")):
        if name in fit.laws():
            law_panel(ax, fit, name)
        elif name in fit.laws("approach3"):
            law_panel(ax, fit, name, "approach3", color="C2", points=False)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.28)
    save_figure(fig, path)
    plt.close(fig)
    return path


def _panel_grid(n: int, width: float = 5.0, height: float = 3.9):
    """A grid of n panels, at most three a row, with fixed margins in inches (labels never clipped)."""
    cols = min(n, 3)
    rows = -(-n // cols)
    w, h = width * cols, height * rows
    fig, axes = plt.subplots(rows, cols, figsize=(w, h), squeeze=False)
    fig.subplots_adjust(left=0.85 / w, right=1 - 0.2 / w, bottom=0.6 / h, top=1 - 0.5 / h, wspace=0.32 * 3 / cols,
                        hspace=0.45)
    flat = axes.ravel().tolist()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def loss_metrics_figure(fit: FitResult, path: Path) -> Path:
    """Fig. 3 (``loss_metrics_plot``) written to ``path``."""
    fig = loss_metrics_plot(fit)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def loss_metrics_plot(fit: FitResult):
    """Fig. 3 style: the loss of compute-optimal models (pure, with a floor, Approach 3) and each generation
    metric at the optimum, against C: one panel each, three a row. FID shows its real-vs-real floor; accuracy is
    drawn on [0, 1] from the smallest fitted budget on."""
    metric_names = [n for n, law in fit.laws().items()
                    if law["quantity"] not in ("N_opt", "D_opt", "L_opt") and n != "FID_floor"]  # drawn with FID
    fig, axes = _panel_grid(1 + len(metric_names))
    ax = axes[0]
    head = fit.headline.get("L_opt") or []
    for i, (approach, name) in enumerate((("approach2", "L_opt"), ("approach2", "L_opt_floor"),
                                          ("approach3", "L_opt"))):
        if name in fit.laws(approach):
            star = " [headline]" if head == [approach, name] else ""
            tag = {"L_opt": "pure: ", "L_opt_floor": "floor: "}[name] if approach == "approach2" else "A3: "
            law_panel(ax, fit, name, approach, color=f"C{i}", prefix=tag.replace(": ", f"{star}: "),
                      points=approach == "approach2" and name == "L_opt", band_labels=i == 0,
                      annotate=head == [approach, name])
    ax.set_ylabel("loss at the optimum")
    ax.set_title("loss of compute-optimal models (values: the headline law)", fontsize=9)
    fid_head = (fit.headline.get("FID") or [None, None])[1]
    for ax, name in zip(axes[1:], metric_names):
        both = name == "FID" and "FID_floor" in fit.laws()
        pure = f"pure{' [headline]' if fid_head == 'FID' else ''}: " if both else ""
        law_panel(ax, fit, name, color="C3", prefix=pure, annotate=not both or fid_head == "FID")
        if both:  # as the loss: the pure law (the paper's) and the law above the floor, the headline marked
            law_panel(ax, fit, "FID_floor", color="C2", band_labels=False, points=False,
                      annotate=fid_head == "FID_floor",
                      prefix=f"above the floor{' [headline]' if fid_head == 'FID_floor' else ''}: ")
        floor = fit.fid_floor if fit.laws()[name]["quantity"] == "FID" else None
        if floor:
            ax.axhline(floor["value"], color="k", ls="--", lw=1, label=f"real-vs-real floor {floor['value']:.4g}")
            lo, hi = ax.get_ylim()
            ax.set_ylim(min(lo, floor["value"] / 1.2), max(hi, floor["value"] * 1.2))
            ax.legend(fontsize=6.5, loc="best", framealpha=0.85)
        ax.set_title(fit.laws()[name].get("label", name) + (" (values: the headline law)" if both else ""), fontsize=9)
        if both:
            ax.set_ylabel("FID at the optimum")
    fig.suptitle(f"{fit.study}: compute-optimal loss and generation metrics (red stars: predictions, 90 % "
                 "intervals)", fontsize=10)
    return fig


BACKTEST_STYLE = {("approach2", "N_opt"): ("C0", "o", "Approach 2"),
                  ("approach2", "L_opt"): ("C0", "o", "Approach 2, pure law"),
                  ("approach2", "L_opt_floor"): ("C2", "D", "Approach 2, floor law"),
                  ("approach3", "N_opt"): ("C3", "s", "Approach 3"), ("approach3", "L_opt"): ("C3", "s", "Approach 3")}
BACKTEST_DODGE = {"approach2": -1, "approach3": 1}  # bars side by side at the same actual value; the floor law at 0
PANEL_QUANTITIES = {"N_opt": ("N_opt",), "L_opt": ("L_opt", "L_opt_floor")}


def backtest_figure(fit: FitResult, path: Path) -> Path | None:
    """Predicted vs actual for every backtest point and the y = x line. Each prediction shows the interval fit.json
    holds for it: the 90 % interval with extrapolation error (thin, capped) around the noise-only one (thick); where
    the fit had no extrapolation-error model only the noise-only bar is drawn and the legend says so. The measured
    optimum's own 90 % bootstrap spread is the horizontal bar. Approaches differ in colour and marker."""
    rows = [r for r in fit.backtest_points() if r["quantity"] in ("N_opt", "L_opt", "L_opt_floor")]
    headline = tuple(fit.headline.get("L_opt") or ())
    if not rows:
        return None
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    for ax, name in zip(axes, ("N_opt", "L_opt")):
        sel = [r for r in rows if r["quantity"] in PANEL_QUANTITIES[name]]
        vals = [v for r in sel for v in (r["actual"], r["predicted"], *(r["ci90"] or ()), *(r["ci90_noise"] or ()),
                                          *(r.get("actual_ci90") or ()))]
        vals = [v for v in vals if v is not None and np.isfinite(v) and v > 0]
        if not vals:
            continue
        lo, hi = min(vals), max(vals)
        pad = (hi / lo) ** 0.06 if hi > lo * 1.001 else 1.02
        lo, hi = lo / pad, hi * pad
        step = np.log(hi / lo) * 0.012
        handles = {}
        for r in sel:
            key = (r["approach"], r["quantity"])
            color, marker, label = BACKTEST_STYLE.get(key, ("C7", "^", f"{r['approach']} {r['quantity']}"))
            if name == "L_opt" and key == headline:
                label += " [headline]"
            y = r["predicted"]
            shift = 0 if r["quantity"] == "L_opt_floor" else BACKTEST_DODGE.get(r["approach"], 0)
            x = r["actual"] * np.exp(step * shift)
            noise, full = r["ci90_noise"], r["ci90"]
            if full is not None:
                ax.errorbar([x], [y], yerr=[[y - full[0]], [full[1] - y]], fmt="none", ecolor=color, elinewidth=1,
                            capsize=4, alpha=0.9, zorder=2)
                handles[(label, "full")] = Line2D([], [], color=color, marker=marker, lw=1,
                                                  label=f"{label}: 90 % with extrapolation error (thin)")
            else:
                handles[(label, "noise")] = Line2D([], [], color=color, marker=marker, lw=3.5, alpha=0.6,
                                                   label=f"{label}: 90 % run noise only (no extrapolation model)")
            if noise is not None and noise[0] is not None:
                ax.vlines(x, noise[0], noise[1], colors=color, lw=3.5, alpha=0.45, zorder=3)
            aci = r.get("actual_ci90")
            if aci and aci[0] is not None:
                ax.hlines(y, aci[0], aci[1], colors=color, lw=1, ls=":", alpha=0.8, zorder=2)
            ax.scatter([x], [y], color=color, marker=marker, s=36, edgecolors="k", linewidths=0.5, zorder=4)
        ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"actual {name} of the held-out budget")
        ax.set_ylabel(f"predicted {name} from the smaller budgets")
        ax.grid(True, which="both", alpha=0.3)
        extra = [Line2D([], [], color="grey", ls="--", label="predicted = actual"),
                 Line2D([], [], color="grey", ls=":", label="actual's own 90 % spread (bars dodged sideways)")]
        if any(k[1] == "full" for k in handles):
            extra.insert(0, Line2D([], [], color="grey", lw=3.5, alpha=0.45, label="90 % run noise only (thick)"))
        ax.legend(handles=[*handles.values(), *extra], fontsize=7, loc="best")
        if name == "L_opt" and hi / lo < 30:
            plain_log_ticks(ax, "x")
            plain_log_ticks(ax, "y")
    fig.suptitle(f"Backtest — {fit.study}: the largest budget(s) predicted from the rest", fontsize=10)
    save_figure(fig, path)
    plt.close(fig)
    return path


def ood_figure(ood: dict, path: Path) -> Path:
    """Fig. 4 style: out-of-domain against in-domain loss over all runs, with the fitted line."""
    pts = ood["points"]
    fig, ax = plt.subplots(figsize=(5.5, 4.4))
    sc = ax.scatter(pts["loss"], pts["ood_loss"], c=np.log10(pts["budget"]), cmap="viridis", s=16)
    xs = np.linspace(min(pts["loss"]), max(pts["loss"]), 50)
    ax.plot(xs, ood["intercept"] + ood["slope"] * xs, color="crimson",
            label=f"ood = {ood['slope']:.3f}·loss + {ood['intercept']:.3f}")
    fig.colorbar(sc, label="log10 budget")
    ax.set_xlabel("in-domain validation loss")
    ax.set_ylabel("out-of-domain validation loss")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.3)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.28)
    save_figure(fig, path)
    plt.close(fig)
    return path


def compare_figure(fit: FitResult, path: Path) -> Path | None:
    """Fig. 5 style: the studies' laws on shared axes."""
    subs = [fit.for_study(s) for s in fit.studies]
    names = [n for n in ("N_opt", "D_opt", "L_opt") if all(n in s.laws() for s in subs)]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for i, sub in enumerate(subs):
            law_panel(ax, sub, name, color=f"C{i}", prefix=f"{sub.study}: ", band_labels=i == 0)
        if name == "L_opt":
            plain_log_ticks(ax)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.28)
    save_figure(fig, path)
    plt.close(fig)
    return path


def all_figures(fit_json: Path, out: Path) -> dict[str, str]:
    """Every figure the fit supports, written into ``out``: {"isoflop": "fig1_isoflop.png", ...}."""
    fit = load_fit(fit_json)
    made = {}
    if fit.laws() or fit.laws("approach3"):
        made["isoflop"] = isoflop_figure(fit, out / "fig1_isoflop.png")
        made["loss_metrics"] = loss_metrics_figure(fit, out / "fig3_loss_fid.png")
    made["backtest"] = backtest_figure(fit, out / "fig2_backtest.png")
    if fit.doc.get("ood"):
        made["ood"] = ood_figure(fit.doc["ood"], out / "fig4_ood.png")
    if len(fit.studies) > 1:
        made["compare"] = compare_figure(fit, out / "fig5_compare.png")
    return {k: v.name for k, v in made.items() if v is not None}
