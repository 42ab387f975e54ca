"""Fit one study end to end: isoFLOP optima (Approach 2), parametric L(N, D) (Approach 3), bootstrap, predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ditlaws.errors import UserError
from ditlaws.laws.bootstrap import Draws, OptimaDraws, budget_optima, draw, summarize
from ditlaws.laws.isoflop import BudgetFit, fit_isoflops
from ditlaws.laws.parametric import ParametricLoss, fit_parametric, theta_of
from ditlaws.laws.powerlaw import PowerLaw, fit_lines, fit_power_law
from ditlaws.laws.table import RunTable

QUANTITIES = ("N_opt", "D_opt", "L_opt", "FID")


@dataclass
class FitOptions:
    n_boot: int = 1000
    seed: int = 0
    bootstrap: str = "noise"
    noise_rel: float | None = None
    allow_edge: bool = False
    screen_outliers: bool = False
    optimum: str = "parabola"
    fid_method: str = "parabola"
    window: float | None = None
    min_points: int = 3
    warn_points: int = 5
    min_budgets: int = 3
    predict: tuple[float, ...] = ()
    holdout: int = 2
    parametric: bool = True
    parametric_boot: int | None = None  # resamples for Approach 3 (each is an L-BFGS fit); None = n_boot


@dataclass
class StudyFit:
    study: str
    table: RunTable
    options: FitOptions
    fits: list[BudgetFit]
    used: np.ndarray  # indices into fits of the budgets that passed the checks
    laws: dict[str, PowerLaw]
    draws: Draws
    optima: OptimaDraws
    law_draws: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (ln coef [R], exponent [R])
    parametric: ParametricLoss | None = None
    parametric_draws: np.ndarray | None = None  # [R', 5]: (a, b, e, alpha, beta) per resample
    warnings: list[str] = field(default_factory=list)

    @property
    def C(self) -> np.ndarray:
        return np.array([f.C for f in self.fits])

    def point_optima(self) -> dict[str, np.ndarray]:
        """The full-data optimum of every budget (NaN where it has none)."""
        return {
            "N_opt": np.array([f.N_opt for f in self.fits]),
            "D_opt": np.array([f.D_opt if np.isfinite(f.x_opt) else np.nan for f in self.fits]),
            "L_opt": np.array([f.L_opt for f in self.fits]),
            "FID": np.array([f.fid_opt for f in self.fits]),
        }

    def optima_draws(self, name: str) -> np.ndarray:
        o = self.optima
        return {"N_opt": np.exp(o.x_opt), "D_opt": np.exp(o.lnD_opt), "L_opt": o.L_opt, "FID": o.fid_opt}[name]

    def predict_draws(self, name: str, C) -> np.ndarray:
        """Bootstrap draws of the law ``name`` at compute(s) C: [R, len(C)]."""
        ln_k, e = self.law_draws[name]
        return np.exp(ln_k[:, None] + e[:, None] * np.log(np.atleast_1d(np.asarray(C, float)))[None, :])

    def parametric_predict_draws(self, C) -> dict[str, np.ndarray]:
        if self.parametric_draws is None:
            return {}
        out = {"N_opt": [], "D_opt": [], "L_opt": []}
        for theta in self.parametric_draws:
            n, d, loss = ParametricLoss.from_theta(theta).optimal(C)
            out["N_opt"].append(n)
            out["D_opt"].append(d)
            out["L_opt"].append(loss)
        return {k: np.asarray(v) for k, v in out.items()}


def fit_study(table: RunTable, options: FitOptions, rng: np.random.Generator, study: str | None = None) -> StudyFit:
    study = study or (table.studies[0] if len(table) else "")
    fits = fit_isoflops(table, min_points=options.min_points, warn_points=options.warn_points,
                        allow_edge=options.allow_edge, screen_outliers=options.screen_outliers,
                        method=options.optimum, fid_method=options.fid_method, window=options.window)
    used = np.array([i for i, f in enumerate(fits) if f.used], dtype=int)
    if len(used) < options.min_budgets:
        reasons = "; ".join(f"{f.budget:.3g}: {', '.join(f.flags) or 'ok'}" for f in fits)
        raise UserError(f"{table.source}: study '{study}' has {len(used)} budget(s) passing the isoFLOP checks, "
                        f"a scaling-law fit needs at least {options.min_budgets} ({reasons})")
    C = np.array([fits[i].C for i in used])
    point = {
        "N_opt": [fits[i].N_opt for i in used], "D_opt": [fits[i].D_opt for i in used],
        "L_opt": [fits[i].L_opt for i in used], "FID": [fits[i].fid_opt for i in used],
    }
    laws = {}
    for name, y in point.items():
        y = np.asarray(y)
        ok = np.isfinite(y) & (y > 0)
        if ok.sum() >= 2:
            laws[name] = fit_power_law(C[ok], y[ok])

    draws = draw(fits, options.n_boot, rng, options.bootstrap, options.noise_rel)
    optima = budget_optima(fits, draws, allow_edge=options.allow_edge, fid_method=options.fid_method,
                           method=options.optimum)
    sf = StudyFit(study=study, table=table, options=options, fits=fits, used=used, laws=laws, draws=draws,
                  optima=optima, law_draws={})
    sf.law_draws = law_draws(sf, used)
    invalid = 1.0 - optima.valid[:, used].mean()
    if invalid > 0.05:
        sf.warnings.append(f"{invalid:.0%} of (resample, budget) vertex fits had no interior minimum and were "
                           f"dropped from their resample; the intervals may be optimistic")
    if options.parametric:
        _fit_parametric(sf, rng)
    return sf


def law_draws(sf: StudyFit, budgets: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Power-law (ln coef, exponent) per resample over the given budget indices."""
    lnC = np.log(sf.C[budgets])
    out = {}
    for name in sf.laws:
        y = sf.optima_draws(name)[:, budgets]
        with np.errstate(divide="ignore", invalid="ignore"):
            ly = np.log(y)
        out[name] = fit_lines(lnC, ly, sf.optima.valid[:, budgets])
    return out


def _fit_parametric(sf: StudyFit, rng: np.random.Generator) -> None:
    fits = sf.fits
    N = np.concatenate([np.exp(f.x) for f in fits])
    D = np.concatenate([np.exp(f.lnD) for f in fits])
    L = np.concatenate([f.loss for f in fits])
    if len(L) < 6:
        sf.warnings.append("Approach 3 skipped: fewer than 6 runs")
        return
    sf.parametric = fit_parametric(N, D, L)
    n = sf.options.parametric_boot if sf.options.parametric_boot is not None else sf.options.n_boot
    n = min(n, sf.draws.n)
    theta0 = theta_of(sf.parametric)
    out = np.full((n, 5), np.nan)
    for r in range(n):
        Nr = np.concatenate([np.exp(f.x[sf.draws.idx[b][r]]) for b, f in enumerate(fits)])
        Dr = np.concatenate([np.exp(f.lnD[sf.draws.idx[b][r]]) for b, f in enumerate(fits)])
        Lr = np.concatenate([sf.draws.loss[b][r] for b in range(len(fits))])
        if np.all(np.isfinite(theta0)):
            out[r] = theta_of(fit_parametric(Nr, Dr, Lr, init=theta0))
    sf.parametric_draws = out


def predictions(sf: StudyFit, targets) -> list[dict]:
    """Both approaches' N_opt, D_opt, L_opt (and FID) at each target compute, with bootstrap intervals."""
    out = []
    for C in targets:
        entry = {"C": float(C), "approach2": {}, "approach3": {}}
        for name, law in sf.laws.items():
            entry["approach2"][name] = {"value": float(law(C)), **summarize(sf.predict_draws(name, C)[:, 0])}
        if sf.parametric is not None:
            n, d, loss = sf.parametric.optimal(C)
            pdraws = sf.parametric_predict_draws(np.array([C]))
            for name, v in zip(("N_opt", "D_opt", "L_opt"), (n, d, loss)):
                entry["approach3"][name] = {"value": float(v), **summarize(pdraws[name][:, 0])}
        out.append(entry)
    return out
