"""Approach 2's own bias, measured on the study's grid: what the parabolas would report on a noise-free surface.

A parabola in ln N is only a second-order picture of an isoFLOP curve. L(N, D) = E + A/N^alpha + B/D^beta along a
budget is E + P·e^(-alpha·u) + R·e^(beta·u) (u = ln N - ln N*), which is symmetric about its minimum only when
alpha = beta; fitting a parabola to it over a wide, off-centre or asymmetric grid moves the vertex, and so the
budget's N_opt, D_opt and L_opt, and the laws fitted through them (Open-Athena's scaling-law analysis, arXiv
2603.22339: on a grid centred on N* the shift is a constant of alpha, beta and the grid, which moves the intercepts;
a grid whose offset changes with C moves the exponents too).

``measure`` takes a fitted surface (Approach 3's point estimate), puts it on every used budget's own runs (the sizes
actually trained, their tokens), fits the same parabolas noise-free and compares their vertices with the surface's
minimum along the same budget (ln D on the budget's line in ln N, as Approach 2 reads D_opt). The per-budget log
errors are the bias; ``correct`` removes them from Approach 2's optima (``--a2-correction surface``); the laws fitted
through the simulated vertices against those through the true minima give each law's bias at any C, which widens
the intervals when the optima are not corrected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

from ditlaws.laws import forms, parabola
from ditlaws.laws.isoflop import BudgetFit
from ditlaws.laws.powerlaw import fit_floor, fit_power_law

CORRECTIONS = ("none", "surface")
QUANTITIES = ("N_opt", "D_opt", "L_opt")


@dataclass
class A2Bias:
    status: str  # "measured" or "none"
    note: str = ""
    C: np.ndarray = field(default_factory=lambda: np.zeros(0))  # used budgets' C (ascending)
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # indices into the fits
    ln_bias: dict[str, np.ndarray] = field(default_factory=dict)  # ln(simulated vertex / true minimum) per budget
    simulated: dict[str, np.ndarray] = field(default_factory=dict)  # the simulated vertices
    true: dict[str, np.ndarray] = field(default_factory=dict)  # the surface's minima along the budgets
    theta: np.ndarray | None = None

    def law_params(self, form: str, quantity: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(params through the simulated vertices, params through the true minima) of a law of C."""
        if self.status != "measured" or len(self.C) < 2:
            return None
        fit = (lambda y: fit_power_law(self.C, y).params) if form == "power" else \
            (lambda y: fit_floor(self.C, y[None, :])[0])
        return fit(self.simulated[quantity]), fit(self.true[quantity])

    def subset(self, fits_idx) -> A2Bias:
        """The same measurement over some of the budgets (indices into the fits, e.g. a backtest's training ones)."""
        if self.status != "measured":
            return self
        keep = np.isin(self.used, np.asarray(fits_idx))
        pick = lambda d: {q: v[keep] for q, v in d.items()}
        return A2Bias("measured", note=self.note, C=self.C[keep], used=self.used[keep], ln_bias=pick(self.ln_bias),
                      simulated=pick(self.simulated), true=pick(self.true), theta=self.theta)

    def exponents(self) -> dict[str, float]:
        """Bias of each power law's exponent: through the simulated vertices minus through the true minima."""
        out = {}
        for q in QUANTITIES:
            pair = self.law_params("power", q)
            if pair is not None:
                out[q] = float(pair[0][1] - pair[1][1])
        return out

    def as_dict(self, correction: str) -> dict:
        if self.status != "measured":
            return {"status": self.status, "note": self.note, "correction": correction}
        return {"status": "measured", "correction": correction, "surface_theta": self.theta.tolist(),
                "note": "Approach 2 run noise-free on the Approach 3 surface over the study's own runs",
                "C": self.C.tolist(), "ln_bias": {q: v.tolist() for q, v in self.ln_bias.items()},
                "rel_bias": {q: np.expm1(v).tolist() for q, v in self.ln_bias.items()},
                "exponent_bias": self.exponents()}


def _true_minimum(theta: np.ndarray, f: BudgetFit) -> tuple[float, float, float]:
    """The surface's minimum along the budget's line ln D = d0 + d1·ln N: (ln N*, ln D*, L*)."""
    loss = lambda x: float(forms.parametric_loss(theta, np.exp(x), np.exp(f.lnD_at(x))).ravel()[0])
    lo, hi = f.x.min() - 6.0, f.x.max() + 6.0
    grid = np.linspace(lo, hi, 241)
    vals = forms.parametric_loss(theta, np.exp(grid), np.exp(f.lnD_at(grid)))
    k = int(np.argmin(vals))
    res = minimize_scalar(loss, bounds=(grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]), method="bounded",
                          options={"xatol": 1e-10})
    return float(res.x), float(f.lnD_at(res.x)), float(res.fun)


def measure(fits: list[BudgetFit], used: np.ndarray, theta: np.ndarray | None) -> A2Bias:
    """The bias of every used budget's vertex under the surface ``theta`` (None: no surface, nothing measured)."""
    if theta is None or not np.all(np.isfinite(theta)):
        return A2Bias("none", note="needs Approach 3's surface (at least 6 runs and a finite fit)")
    sim = {q: [] for q in QUANTITIES}
    true = {q: [] for q in QUANTITIES}
    for i in used:
        f = fits[i]
        clean = forms.parametric_loss(theta, np.exp(f.x), np.exp(f.lnD))
        coef = parabola.solve(f.design(), clean)
        xv, lv = parabola.vertex(coef, f.centre, f.scale)
        xt, dt, lt = _true_minimum(theta, f)
        sim["N_opt"].append(np.exp(xv))
        sim["D_opt"].append(np.exp(f.lnD_at(xv)))
        sim["L_opt"].append(lv)
        true["N_opt"].append(np.exp(xt))
        true["D_opt"].append(np.exp(dt))
        true["L_opt"].append(lt)
    sim = {q: np.array(v, dtype=float) for q, v in sim.items()}
    true = {q: np.array(v, dtype=float) for q, v in true.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        ln_bias = {q: np.log(sim[q]) - np.log(true[q]) for q in QUANTITIES}
    if not all(np.all(np.isfinite(v)) for v in ln_bias.values()):
        return A2Bias("none", note="the noise-free parabolas of the surface had no interior vertex on some budget")
    return A2Bias("measured", C=np.array([fits[i].C for i in used]), used=np.asarray(used), ln_bias=ln_bias,
                  simulated=sim, true=true, theta=np.asarray(theta, dtype=float))


def correction_factors(bias: A2Bias, n_fits: int) -> dict[str, np.ndarray]:
    """Per fit (all budgets, 0 where unmeasured): the ln factor to subtract from each quantity's optimum."""
    out = {q: np.zeros(n_fits) for q in QUANTITIES}
    if bias.status == "measured":
        for q in QUANTITIES:
            out[q][bias.used] = bias.ln_bias[q]
    return out


def correct_optima(optima, factors: dict[str, np.ndarray]):
    """Bootstrap optima (``bootstrap.OptimaDraws``) with every budget's bias removed (metrics unchanged)."""
    from dataclasses import replace

    return replace(optima, x_opt=optima.x_opt - factors["N_opt"], lnD_opt=optima.lnD_opt - factors["D_opt"],
                   L_opt=optima.L_opt * np.exp(-factors["L_opt"]))


def law_bias(bias: A2Bias, form: str, quantity: str, applied: bool) -> dict | None:
    """What fit.json records of a law's bias: the law through the simulated vertices and through the true minima
    (its bias at C is the log ratio of the two), and whether the optima were corrected before fitting."""
    pair = bias.law_params(form, quantity)
    if pair is None:
        return None
    return {"form": form, "params_simulated": pair[0].tolist(), "params_true": pair[1].tolist(),
            "corrected": bool(applied)}
