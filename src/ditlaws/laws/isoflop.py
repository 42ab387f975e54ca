"""Approach 2, step 1: per isoFLOP budget group, fit loss against ln N and take the vertex as the optimum.

Loss is modelled as a parabola in x = ln N (``ditlaws.laws.parabola``). Every budget goes through quality checks
whose outcome is recorded, never hidden: enough distinct sizes, positive curvature whose 95 % interval excludes
zero, and a vertex inside the sampled range (an edge minimum would be an extrapolation, so it is excluded unless
the user asks for it). Generation metrics (FID, 1 - accuracy, CLIP score; see ``ditlaws.laws.metrics``) are read at
the loss optimum: a parabola of their log in ln N when the budget has >= 3 of them, else the run nearest the optimum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ditlaws.laws import parabola
from ditlaws.laws.metrics import GENERATION_METRICS
from ditlaws.laws.table import RunTable, group_budgets

OPTIMUM_METHODS = ("parabola", "spline")
FID_METHODS = ("parabola", "nearest")
DEFAULT_TOLERANCE = 0.05
ONE_SIDED = 2  # fewest sampled sizes on each side of a vertex before the grid counts as off-centre


@dataclass
class BudgetFit:
    """One isoFLOP curve: its data, its parabola, its vertex and its quality-check outcome."""

    budget: float
    C: float  # geometric mean compute of the group's runs under the table's FLOP convention
    x: np.ndarray  # ln N of the runs used (after outlier screening / windowing)
    loss: np.ndarray
    lnD: np.ndarray
    run_id: np.ndarray
    metrics: dict[str, np.ndarray]  # law name -> fitted quantity per run (FID, 1 - accuracy, ...); NaN where absent
    centre: float = 0.0
    scale: float = 1.0
    coef: np.ndarray | None = None  # parabola coefficients in u = (x - centre) / scale
    d_line: tuple[float, float] = (0.0, -1.0)  # ln D = d0 + d1 ln N within the budget (the plan's relation)
    metric_coef: dict[str, np.ndarray] = field(default_factory=dict)  # parabola of ln(metric) in u
    x_opt: float = float("nan")
    L_opt: float = float("nan")
    metric_opt: dict[str, float] = field(default_factory=dict)  # fitted quantity at the loss optimum
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

    @property
    def fid_opt(self) -> float:
        return self.metric_opt.get("FID", float("nan"))

    def lnD_at(self, x):
        return self.d_line[0] + self.d_line[1] * np.asarray(x)

    def predict(self, x) -> np.ndarray:
        return parabola.evaluate(self.coef, x, self.centre, self.scale)

    def design(self) -> np.ndarray:
        return parabola.design(self.x, self.centre, self.scale)

    def _keep(self, keep: np.ndarray) -> None:
        for name in ("x", "loss", "lnD", "run_id"):
            setattr(self, name, getattr(self, name)[keep])
        self.metrics = {k: v[keep] for k, v in self.metrics.items()}


def fit_isoflops(table: RunTable, *, min_points: int = 3, warn_points: int = 5, allow_edge: bool = False,
                 screen_outliers: bool = False, method: str = "parabola", fid_method: str = "parabola",
                 window: float | None = None, ci_level: float = 0.95) -> list[BudgetFit]:
    """Fit every budget group of one study's table (sorted by compute) and run the quality checks.

    ``window``: when set, each budget keeps only the runs within that factor in N of its lowest-loss run, so a
    parabola is not asked to describe a wide, asymmetric curve (by default all runs are used, as in the paper).
    """
    if table.budget is None:
        group_budgets(table, DEFAULT_TOLERANCE)
    present = [m for m in GENERATION_METRICS if table.has(m.key)]
    fits = []
    for budget in np.unique(table.budget):
        sel = table.budget == budget
        order = np.argsort(table.N[sel], kind="stable")
        with np.errstate(invalid="ignore"):
            metrics = {m.law: m.to_fitted(table.metrics[m.key][sel][order]) for m in present}
        fit = BudgetFit(budget=float(budget), C=float(np.exp(np.mean(np.log(table.C[sel])))),
                        x=np.log(table.N[sel][order]), loss=table.loss[sel][order], lnD=np.log(table.D[sel][order]),
                        run_id=table.run_id[sel][order], metrics=metrics)
        if window is not None:
            _apply_window(fit, window)
        _fit_one(fit, screen_outliers)
        fits.append(fit)
    fits.sort(key=lambda f: f.C)
    pooled = pooled_residual(fits)
    for fit in fits:
        _check(fit, pooled, min_points, warn_points, allow_edge, ci_level)
        if fit.coef is not None and method == "spline":
            _spline_vertex(fit, allow_edge)
        _metrics_at_vertex(fit, fid_method)
    return fits


def _apply_window(fit: BudgetFit, window: float) -> None:
    best = fit.x[np.argmin(fit.loss)]
    keep = np.abs(fit.x - best) <= np.log(window) + 1e-12
    if not keep.all():
        fit.messages.append(f"budget {fit.budget:.3g}: {int((~keep).sum())} run(s) more than {window:g}x away in N "
                            f"from the best run left out of the fit (--fit-window)")
        fit._keep(keep)


def _fit_one(fit: BudgetFit, screen_outliers: bool) -> None:
    distinct = len(np.unique(fit.x))
    if distinct >= 2:
        slope, intercept = np.polyfit(fit.x, fit.lnD, 1)
        fit.d_line = (float(intercept), float(slope))
    if distinct < 3:
        return
    fit.centre = float(np.mean(fit.x))
    fit.scale = float(np.ptp(fit.x) / 2) or 1.0
    fit.coef = parabola.solve(fit.design(), fit.loss)
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
        c = parabola.solve(X[keep], fit.loss[keep])
        r = fit.loss[keep] - X[keep] @ c
        s = np.sqrt(np.sum(r**2) / max(n - 1 - 3, 1))
        h = X[i] @ np.linalg.pinv(X[keep].T @ X[keep]) @ X[i]
        t[i] = (fit.loss[i] - X[i] @ c) / (s * np.sqrt(1 + h)) if s > 0 else 0.0
    worst = int(np.argmax(np.abs(t)))
    if abs(t[worst]) > threshold:
        fit.outliers.append(str(fit.run_id[worst]))
        fit.messages.append(f"run {fit.run_id[worst]} (N={np.exp(fit.x[worst]):.3g}) screened out as an outlier "
                            f"(studentized residual {t[worst]:.1f})")
        fit._keep(np.arange(n) != worst)
        fit.coef = parabola.solve(fit.design(), fit.loss)


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
    fit.x_opt, fit.L_opt = (float(v) for v in parabola.vertex(fit.coef, fit.centre, fit.scale))
    fit.curvature = float(parabola.curvature(fit.coef, fit.scale))
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
    else:
        _check_sides(fit, name)
    fit.used = True


def _check_sides(fit: BudgetFit, name: str) -> None:
    """Warn when fewer than ONE_SIDED sizes lie on one side of the vertex: the parabola's curvature there is read off
    the other side, and an isoFLOP curve is not symmetric, so the vertex of such an off-centre grid is biased (its
    bootstrap, which trusts the parabola, does not show it)."""
    sizes = np.unique(fit.x)
    below, above = int(np.sum(sizes < fit.x_opt)), int(np.sum(sizes > fit.x_opt))
    if min(below, above) >= ONE_SIDED:
        return
    side, count = ("above", above) if above < below else ("below", below)
    fit.flags.append("one_sided")
    sizes_word = "size" if count == 1 else "sizes"
    fit.messages.append(f"{name}: only {count} sampled {sizes_word} {side} its optimum N={fit.N_opt:.3g} "
                        f"({below + above - count} on the other side); the vertex of an off-centre grid is biased "
                        f"— sample sizes {side} it")


def _spline_vertex(fit: BudgetFit, allow_edge: bool) -> None:
    """Replace the parabola vertex by the minimum of a smoothing spline (when the budget has >= 5 sizes)."""
    found = parabola.spline_vertex(fit.x, fit.loss)
    if found is None:
        return
    if np.isfinite(found[0]):
        fit.x_opt, fit.L_opt = found
    elif fit.used and not allow_edge:
        fit.flags.append("edge_minimum")
        fit.messages.append(f"budget {fit.budget:.3g}: the spline's minimum is at the edge of the sampled sizes "
                            f"— excluded")
        fit.used = False


def _metrics_at_vertex(fit: BudgetFit, fid_method: str) -> None:
    for law, y in fit.metrics.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = np.isfinite(y) & (y > 0)
        if not ok.any() or not np.isfinite(fit.x_opt):
            continue
        if fid_method == "parabola" and len(np.unique(fit.x[ok])) >= 3:
            fit.metric_coef[law] = parabola.solve(parabola.design(fit.x[ok], fit.centre, fit.scale), np.log(y[ok]))
            fit.metric_opt[law] = float(np.exp(parabola.evaluate(fit.metric_coef[law], fit.x_opt, fit.centre,
                                                                 fit.scale)))
        else:
            near = np.argmin(np.where(ok, np.abs(fit.x - fit.x_opt), np.inf))
            fit.metric_opt[law] = float(y[near])
