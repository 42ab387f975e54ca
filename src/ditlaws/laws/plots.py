"""Figures in the paper's style (PNG, log axes, matplotlib Agg). Each function writes one file and returns its path."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ditlaws.laws.study import StudyFit  # noqa: E402

LABELS = {"N_opt": "optimal parameters $N_{opt}$", "D_opt": "optimal tokens $D_{opt}$",
          "L_opt": "loss at the optimum", "FID": "FID at the optimum"}


def _compute_grid(sf: StudyFit, targets) -> np.ndarray:
    hi = max([sf.C.max(), *targets]) if len(targets) else sf.C.max()
    return np.geomspace(sf.C.min() / 1.5, hi * 1.5, 100)


def _law_panel(ax, sf: StudyFit, name: str, targets, color="C0", label_prefix="") -> None:
    point = sf.point_optima()[name]
    used = np.zeros(len(sf.fits), dtype=bool)
    used[sf.used] = True
    ok = np.isfinite(point)
    ax.scatter(sf.C[used & ok], point[used & ok], color=color, zorder=3, label=f"{label_prefix}optima")
    if (~used & ok).any():
        ax.scatter(sf.C[~used & ok], point[~used & ok], facecolors="none", edgecolors="grey", zorder=3,
                   label="excluded (QC)")
    law = sf.laws[name]
    grid = _compute_grid(sf, targets)
    draws = sf.predict_draws(name, grid)
    lo, hi = np.nanpercentile(draws, [5, 95], axis=0)
    ax.plot(grid, law(grid), color=color,
            label=f"{label_prefix}{law.coef:.4g}·C^{law.exponent:.4f}")
    ax.fill_between(grid, lo, hi, color=color, alpha=0.2, lw=0, label="90 % band")
    for C in targets:
        lo_c, hi_c = np.nanpercentile(sf.predict_draws(name, [C])[:, 0], [5, 95])
        ax.vlines(C, lo_c, hi_c, color="crimson", lw=2, zorder=4)
        ax.scatter([C], [law(C)], marker="*", color="crimson", s=140, zorder=5, label=f"prediction at {C:.2g}")
        ax.annotate(f"{law(C):.3g}", (C, law(C)), textcoords="offset points", xytext=(-10, 8), ha="right",
                    fontsize=8, color="crimson")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("compute C (FLOPs)")
    ax.set_ylabel(LABELS[name])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def isoflop_figure(sf: StudyFit, targets, path: Path) -> Path:
    """Fig. 1 style: isoFLOP curves with parabolas and optima; N_opt and D_opt against C with fit and band."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    cmap = plt.get_cmap("viridis")
    for i, f in enumerate(sf.fits):
        color = cmap(i / max(len(sf.fits) - 1, 1))
        N = np.exp(f.x)
        axes[0].scatter(N, f.loss, color=color, s=14, label=f"{f.budget:.2g}" + ("" if f.used else " (excluded)"),
                        marker="o" if f.used else "x")
        if f.coef is not None:
            xs = np.linspace(f.x.min(), f.x.max(), 100)
            axes[0].plot(np.exp(xs), f.predict(xs), color=color, lw=1, ls="-" if f.used else ":")
        if f.used:
            axes[0].scatter([f.N_opt], [f.L_opt], color=color, marker="*", s=120, edgecolors="k", zorder=4)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("parameters N")
    axes[0].set_ylabel("loss")
    axes[0].set_title(f"isoFLOP curves — {sf.study}")
    axes[0].legend(fontsize=7, title="budget (FLOPs)", title_fontsize=7)
    axes[0].grid(True, which="both", alpha=0.3)
    for ax, name in zip(axes[1:], ("N_opt", "D_opt")):
        _law_panel(ax, sf, name, targets)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def loss_fid_figure(sf: StudyFit, targets, path: Path) -> Path:
    """Fig. 3 style: loss (and FID) of the compute-optimal models against C, with predictions."""
    names = [n for n in ("L_opt", "FID") if n in sf.laws]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        _law_panel(ax, sf, name, targets)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def ood_figure(sf: StudyFit, line: dict, path: Path) -> Path:
    """Fig. 4 style: out-of-domain against in-domain loss over all runs, with the fitted line."""
    t = sf.table
    ok = np.isfinite(t.ood_loss)
    fig, ax = plt.subplots(figsize=(5.5, 4.4))
    sc = ax.scatter(t.loss[ok], t.ood_loss[ok], c=np.log10(t.budget[ok]), cmap="viridis", s=16)
    xs = np.linspace(t.loss[ok].min(), t.loss[ok].max(), 50)
    ax.plot(xs, line["intercept"] + line["slope"] * xs, color="crimson",
            label=f"ood = {line['slope']:.3f}·loss + {line['intercept']:.3f}")
    fig.colorbar(sc, label="log10 budget")
    ax.set_xlabel("in-domain validation loss")
    ax.set_ylabel("out-of-domain validation loss")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def compare_figure(studies: list[StudyFit], targets, path: Path) -> Path:
    """Fig. 5 style: the studies' optima and laws on shared axes."""
    names = [n for n in ("N_opt", "D_opt", "L_opt") if all(n in sf.laws for sf in studies)]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for i, sf in enumerate(studies):
            _law_panel(ax, sf, name, targets, color=f"C{i}", label_prefix=f"{sf.study}: ")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
