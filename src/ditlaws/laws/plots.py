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


def save_figure(fig, path: Path) -> None:
    """A PNG written atomically (a full disk leaves the earlier figure, never half of one)."""
    from ditlaws.jsonio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


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


def _grid(fit: FitResult) -> np.ndarray:
    hi = max([fit.doc["C_max"], *_targets(fit)])
    return np.geomspace(fit.doc["C_min"] / 1.5, hi * 1.5, 120)


def law_panel(ax, fit: FitResult, name: str, approach: str = "approach2", color: str = "C0", prefix: str = "",
              points: bool = True, band_labels: bool = True) -> None:
    """A law with its noise-only band, its band with extrapolation error, its fitted points and predictions."""
    grid = _grid(fit)
    q = fit.law_curve(name, grid, approach)
    law = fit.laws(approach)[name]
    label = f"{prefix}{_formula(law)}"
    ax.plot(grid, q["value"], color=color, label=label)
    if q["ci90"] is not None:
        ax.fill_between(grid, q["ci90"][:, 0], q["ci90"][:, 1], color=color, alpha=0.12, lw=0,
                        label="90 % with extrapolation error" if band_labels else None)
    ax.fill_between(grid, q["ci90_noise"][:, 0], q["ci90_noise"][:, 1], color=color, alpha=0.3, lw=0,
                    label="90 % run noise" if band_labels else None)
    if points and q["points"]["C"]:
        ax.scatter(q["points"]["C"], q["points"]["value"], color=color, zorder=3, s=22, edgecolors="k",
                   linewidths=0.5, label=f"{prefix}budget optima")
    for C in _targets(fit):
        p = fit.predict(C)[approach].get(name)
        if not p:
            continue
        iv = p["ci90"] or p["ci90_noise"]
        ax.vlines(C, iv[0], iv[1], color="crimson", lw=2, zorder=4)
        ax.scatter([C], [p["value"]], marker="*", color="crimson", s=120, zorder=5)
        ax.annotate(f"{p['value']:.3g}", (C, p["value"]), textcoords="offset points", xytext=(-8, 8), ha="right",
                    fontsize=8, color="crimson")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel(law.get("label", name))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6.5, loc="upper left" if law["quantity"] in ("N_opt", "D_opt") else "upper right")
    plain_log_ticks(ax)


def _formula(law: dict) -> str:
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


def loss_metrics_figure(fit: FitResult, path: Path) -> Path:
    """Fig. 3 style: the loss of compute-optimal models (pure, with a floor, Approach 3) and each generation
    metric at the optimum, against C."""
    metric_names = [n for n, law in fit.laws().items() if law["quantity"] not in ("N_opt", "D_opt", "L_opt")]
    panels = 1 + len(metric_names)
    fig, axes = plt.subplots(1, panels, figsize=(5.6 * panels, 4.4), squeeze=False)
    ax = axes[0][0]
    head = fit.headline.get("L_opt") or []
    for i, (approach, name) in enumerate((("approach2", "L_opt"), ("approach2", "L_opt_floor"),
                                          ("approach3", "L_opt"))):
        if name in fit.laws(approach):
            star = " [headline]" if head == [approach, name] else ""
            tag = {"L_opt": "pure: ", "L_opt_floor": "floor: "}[name] if approach == "approach2" else "A3: "
            law_panel(ax, fit, name, approach, color=f"C{i}", prefix=tag.replace(": ", f"{star}: "),
                      points=approach == "approach2" and name == "L_opt", band_labels=i == 0)
    ax.set_ylabel("loss at the optimum")
    plain_log_ticks(ax)
    for ax, name in zip(axes[0][1:], metric_names):
        law_panel(ax, fit, name, color="C3")
        if fit.laws()[name]["transform"] == "one_minus":
            ax.set_yscale("linear")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.28)
    save_figure(fig, path)
    plt.close(fig)
    return path


def backtest_figure(fit: FitResult, path: Path) -> Path | None:
    """Predicted vs actual for every backtest point, with both 90 % intervals, and the y = x line."""
    rows = [r for r in fit.backtest_points() if r["quantity"] in ("N_opt", "L_opt")]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, name in zip(axes, ("N_opt", "L_opt")):
        sel = [r for r in rows if r["quantity"] == name]
        for r in sel:
            color = "C0" if r["approach"] == "approach2" else "C2"
            ci = r["ci90"] or r["ci90_noise"]
            ax.errorbar([r["actual"]], [r["predicted"]], yerr=[[r["predicted"] - ci[0]], [ci[1] - r["predicted"]]],
                        fmt="o", color=color, capsize=3, alpha=0.8)
        if sel:
            vals = [v for r in sel for v in (r["actual"], *(r["ci90"] or r["ci90_noise"]))]
            lo, hi = min(vals) / 1.02, max(vals) * 1.02
            ax.plot([lo, hi], [lo, hi], color="grey", ls="--", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"actual {name} (held-out budget)")
        ax.set_ylabel(f"predicted {name} (90 % with extrapolation error)")
        ax.set_title("blue: Approach 2, green: Approach 3", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        if name == "L_opt":
            plain_log_ticks(ax, "x")
            plain_log_ticks(ax, "y")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.92, wspace=0.28)
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
