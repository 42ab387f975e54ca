"""Approach 2, step 1: per compute budget, fit loss against log N and take the vertex as the optimum.

Loss is modelled as a parabola in x = ln N (centred and scaled per budget for conditioning). Every budget goes
through quality checks whose outcome is recorded, never hidden: enough distinct sizes, positive curvature whose
95 % interval excludes zero, and a vertex inside the sampled range (an edge minimum would be an extrapolation,
so it is excluded unless the user asks for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ditlaws.laws.table import RunTable

OPTIMUM_METHODS = ("parabola", "spline")
FID_METHODS = ("parabola", "nearest")


@dataclass
class BudgetFit:
    """One isoFLOP curve: its data, its parabola, its vertex and its quality-check outcome."""

    budget: float
    C: float  # geometric mean compute of the budget's runs under the table's FLOP convention
    x: np.ndarray  # ln N of the runs used (after outlier screening)
    loss: np.ndarray
    lnD: np.ndarray
    fid: np.ndarray
    run_id: np.ndarray
    centre: float = 0.0
    scale: float = 1.0
    coef: np.ndarray | None = None  # parabola coefficients in u = (x - centre) / scale: c0 + c1 u + c2 u^2
    d_line: tuple[float, float] = (0.0, -1.0)  # ln D = d0 + d1 ln N within the budget (the plan's relation)
    fid_coef: np.ndarray | None = None  # parabola of ln FID in u, when the budget has >= 3 FIDs
    x_opt: float = float("nan")
    L_opt: float = float("nan")
    fid_opt: float = float("nan")
    curvature: float = float("nan")  # d^2 loss / d(ln N)^2 at the vertex
    curvature_ci95: tuple[float, float] = (float("nan"), float("nan"))
    residual_rel_std: float = float("nan")
    dof: int = 0
    flags: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    outliers: list[str] = field(default_factory=list)
    used: bool = False

    @property
    def n_points(self) -> int:
        return len(self.x)

    @property
    def N_opt(self) -> float:
        return float(np.exp(self.x_opt))

    @property
    def D_opt(self) -> float:
        return float(np.exp(self.lnD_at(self.x_opt)))

    def lnD_at(self, x):
        return self.d_line[0] + self.d_line[1] * np.asarray(x)

    def predict(self, x) -> np.ndarray:
        u = (np.asarray(x, dtype=float) - self.centre) / self.scale
        return self.coef[0] + self.coef[1] * u + self.coef[2] * u**2

    def design(self) -> np.ndarray:
        return parabola_design(self.x, self.centre, self.scale)


def parabola_design(x: np.ndarray, centre: float, scale: float) -> np.ndarray:
    u = (np.asarray(x, dtype=float) - centre) / scale
    return np.stack([np.ones_like(u), u, u**2], axis=-1)


def solve_parabolas(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares parabolas for a batch at once: X [..., n, 3], y [..., n] -> coefficients [..., 3].

    Singular systems (fewer than three distinct sizes in a resample) come back as NaN.
    """
    XtX = np.einsum("...ni,...nj->...ij", X, X)
    Xty = np.einsum("...ni,...n->...i", X, y)
    det = np.linalg.det(XtX)
    scale = np.einsum("...ii->...", XtX) ** 3
    singular = ~(np.abs(det) > 1e-10 * scale)
    XtX = np.where(singular[..., None, None], np.eye(3), XtX)
    coef = np.linalg.solve(XtX, Xty[..., None])[..., 0]
    coef[singular] = np.nan
    return coef


def vertex(coef: np.ndarray, centre: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex (x*, y*) of c0 + c1 u + c2 u^2 with u = (x - centre) / scale; works on batches [..., 3]."""
    c0, c1, c2 = coef[..., 0], coef[..., 1], coef[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = -c1 / (2 * c2)
    return centre + scale * u, c0 + c1 * u + c2 * u**2


def fit_isoflops(table: RunTable, *, min_points: int = 3, warn_points: int = 5, allow_edge: bool = False,
                 screen_outliers: bool = False, method: str = "parabola", fid_method: str = "parabola",
                 window: float | None = None, ci_level: float = 0.95) -> list[BudgetFit]:
    """Fit every budget of one study's table (sorted by compute) and run the quality checks.

    ``window``: when set, each budget keeps only the runs within that factor in N of its lowest-loss run, so a
    parabola is not asked to describe a wide, asymmetric curve (by default all runs are used, as in the paper).
    """
    fits = []
    for budget in np.unique(table.budget):
        sel = table.budget == budget
        order = np.argsort(table.N[sel], kind="stable")
        fit = BudgetFit(budget=float(budget), C=float(np.exp(np.mean(np.log(table.C[sel])))),
                        x=np.log(table.N[sel][order]), loss=table.loss[sel][order], lnD=np.log(table.D[sel][order]),
                        fid=table.fid[sel][order], run_id=table.run_id[sel][order])
        if window is not None:
            _apply_window(fit, window)
        _fit_one(fit, screen_outliers)
        fits.append(fit)
    fits.sort(key=lambda f: f.C)
    pooled = pooled_residual(fits)
    for fit in fits:
        _check(fit, pooled, min_points, warn_points, allow_edge, ci_level)
        if fit.coef is not None and method == "spline" and len(np.unique(fit.x)) >= 5:
            _spline_vertex(fit, allow_edge)
        _fid_at_vertex(fit, fid_method)
    return fits


def _apply_window(fit: BudgetFit, window: float) -> None:
    best = fit.x[np.argmin(fit.loss)]
    keep = np.abs(fit.x - best) <= np.log(window) + 1e-12
    if not keep.all():
        fit.messages.append(f"budget {fit.budget:.3g}: {int((~keep).sum())} run(s) more than {window:g}x away in N "
                            f"from the best run left out of the fit (--fit-window)")
        for name in ("x", "loss", "lnD", "fid", "run_id"):
            setattr(fit, name, getattr(fit, name)[keep])


def _fit_one(fit: BudgetFit, screen_outliers: bool) -> None:
    distinct = len(np.unique(fit.x))
    if distinct >= 2:
        slope, intercept = np.polyfit(fit.x, fit.lnD, 1)
        fit.d_line = (float(intercept), float(slope))
    if distinct < 3:
        return
    fit.centre = float(np.mean(fit.x))
    fit.scale = float(np.ptp(fit.x) / 2) or 1.0
    fit.coef = solve_parabolas(fit.design(), fit.loss)
    if screen_outliers and len(fit.x) >= 6:
        _screen_outlier(fit)
    resid = fit.loss - fit.predict(fit.x)
    fit.dof = len(fit.x) - 3
    if fit.dof > 0:
        fit.residual_rel_std = float(np.sqrt(np.sum((resid / fit.loss) ** 2) / fit.dof))


def _screen_outlier(fit: BudgetFit, threshold: float = 4.0) -> None:
    """Drop the single run whose leave-one-out studentized residual exceeds ``threshold`` (if any)."""
    X = fit.design()
    n = len(fit.x)
    t = np.zeros(n)
    for i in range(n):
        keep = np.arange(n) != i
        c = solve_parabolas(X[keep], fit.loss[keep])
        r = fit.loss[keep] - X[keep] @ c
        s = np.sqrt(np.sum(r**2) / max(n - 1 - 3, 1))
        h = X[i] @ np.linalg.pinv(X[keep].T @ X[keep]) @ X[i]
        t[i] = (fit.loss[i] - X[i] @ c) / (s * np.sqrt(1 + h)) if s > 0 else 0.0
    worst = int(np.argmax(np.abs(t)))
    if abs(t[worst]) > threshold:
        fit.outliers.append(str(fit.run_id[worst]))
        fit.messages.append(f"run {fit.run_id[worst]} (N={np.exp(fit.x[worst]):.3g}) screened out as an outlier "
                            f"(studentized residual {t[worst]:.1f})")
        keep = np.arange(n) != worst
        for name in ("x", "loss", "lnD", "fid", "run_id"):
            setattr(fit, name, getattr(fit, name)[keep])
        fit.coef = solve_parabolas(fit.design(), fit.loss)


def pooled_residual(fits: list[BudgetFit]) -> tuple[float, int]:
    """Relative residual std pooled over budgets with spare degrees of freedom, and its dof."""
    ss, dof = 0.0, 0
    for f in fits:
        if f.dof > 0 and np.isfinite(f.residual_rel_std):
            ss += f.residual_rel_std**2 * f.dof
            dof += f.dof
    return (float(np.sqrt(ss / dof)) if dof else float("nan")), dof


def _check(fit: BudgetFit, pooled: tuple[float, int], min_points: int, warn_points: int, allow_edge: bool,
           ci_level: float) -> None:
    name = f"budget {fit.budget:.3g}"
    distinct = len(np.unique(fit.x))
    if distinct < max(min_points, 3):
        fit.flags.append("too_few_points")
        fit.messages.append(f"{name}: {distinct} distinct model size(s); a parabola needs at least "
                            f"{max(min_points, 3)} — excluded")
        return
    if distinct < warn_points:
        fit.flags.append("few_points")
        fit.messages.append(f"{name}: only {distinct} distinct sizes (< {warn_points}); its optimum is fragile")
    fit.x_opt, fit.L_opt = (float(v) for v in vertex(fit.coef, fit.centre, fit.scale))
    fit.curvature = float(2 * fit.coef[2] / fit.scale**2)
    sigma_rel, dof = (fit.residual_rel_std, fit.dof) if fit.dof > 0 else pooled
    if dof > 0 and np.isfinite(sigma_rel):
        X = fit.design()
        sigma = sigma_rel * float(np.mean(fit.loss))
        se_c2 = sigma * np.sqrt(np.linalg.inv(X.T @ X)[2, 2])
        half = stats.t.ppf(0.5 + ci_level / 2, dof) * 2 * se_c2 / fit.scale**2
        fit.curvature_ci95 = (fit.curvature - half, fit.curvature + half)
        if fit.dof == 0:
            fit.messages.append(f"{name}: no spare points; curvature interval uses the residual noise pooled "
                                f"over the other budgets")
    else:
        fit.flags.append("curvature_unchecked")
        fit.messages.append(f"{name}: no residual degrees of freedom anywhere; curvature interval unavailable")
    if fit.curvature <= 0:
        fit.flags.append("not_convex")
        fit.messages.append(f"{name}: the loss curve bends down (curvature {fit.curvature:.2e} <= 0), "
                            f"so it has no minimum — excluded")
        return
    if fit.curvature_ci95[0] <= 0:
        fit.flags.append("flat")
        fit.messages.append(f"{name}: curve too flat — the curvature's {ci_level:.0%} interval "
                            f"[{fit.curvature_ci95[0]:.2e}, {fit.curvature_ci95[1]:.2e}] includes 0 — excluded "
                            f"(add sizes further from the optimum, or seeds)")
        return
    lo, hi = fit.x.min(), fit.x.max()
    if not lo <= fit.x_opt <= hi:
        fit.flags.append("edge_minimum")
        side = "below the smallest" if fit.x_opt < lo else "above the largest"
        edge = np.exp(lo if fit.x_opt < lo else hi)
        if allow_edge:
            fit.messages.append(f"{name}: vertex N={fit.N_opt:.3g} lies {side} sampled N={edge:.3g}; "
                                f"extrapolated because allow_edge is set")
        else:
            fit.messages.append(f"{name}: vertex N={fit.N_opt:.3g} lies {side} sampled N={edge:.3g} "
                                f"(edge minimum) — excluded; sample sizes beyond it or pass --allow-edge")
            return
    fit.used = True


def _spline_vertex(fit: BudgetFit, allow_edge: bool) -> None:
    """Replace the parabola vertex by the minimum of a smoothing spline (GCV-chosen smoothing)."""
    from scipy.interpolate import make_smoothing_spline

    xs, inv = np.unique(fit.x, return_inverse=True)
    ys = np.bincount(inv, weights=fit.loss) / np.bincount(inv)
    spline = make_smoothing_spline(xs, ys)
    grid = np.linspace(xs[0], xs[-1], 2001)
    vals = spline(grid)
    i = int(np.argmin(vals))
    if 0 < i < len(grid) - 1:
        fit.x_opt, fit.L_opt = float(grid[i]), float(vals[i])
    elif fit.used and not allow_edge:
        fit.flags.append("edge_minimum")
        fit.messages.append(f"budget {fit.budget:.3g}: the spline's minimum is at the edge of the sampled sizes "
                            f"— excluded")
        fit.used = False


def _fid_at_vertex(fit: BudgetFit, fid_method: str) -> None:
    ok = np.isfinite(fit.fid) & (fit.fid > 0)
    if not ok.any() or not np.isfinite(fit.x_opt):
        return
    if fid_method == "parabola" and len(np.unique(fit.x[ok])) >= 3:
        fit.fid_coef = solve_parabolas(parabola_design(fit.x[ok], fit.centre, fit.scale), np.log(fit.fid[ok]))
        u = (fit.x_opt - fit.centre) / fit.scale
        fit.fid_opt = float(np.exp(fit.fid_coef @ np.array([1.0, u, u * u])))
    else:
        near = np.argmin(np.where(ok, np.abs(fit.x - fit.x_opt), np.inf))
        fit.fid_opt = float(fit.fid[near])
