"""Fit one study end to end: isoFLOP optima and their laws (Approach 2), parametric L(N, D) (Approach 3).

Approach 3 runs on all runs whenever there are enough of them; Approach 2 runs when at least ``min_budgets``
budget groups pass the isoFLOP checks and is otherwise skipped with one line saying why. Only when neither can
be fitted is that an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ditlaws.errors import UserError
from ditlaws.laws.a2bias import CORRECTIONS, A2Bias, correct_optima, correction_factors, law_bias, measure
from ditlaws.laws.approach2 import LawFit, choose_fid_headline, choose_loss_headline, corrected, fit_laws, point_optima
from ditlaws.laws.approach3 import A3_BOOTSTRAP_METHODS, Approach3Fit, Reference, fit_approach3
from ditlaws.laws.bootstrap import BOOTSTRAP_METHODS, Draws, OptimaDraws, budget_optima, draw
from ditlaws.laws.isoflop import FID_METHODS, OPTIMUM_METHODS, BudgetFit, fit_isoflops
from ditlaws.laws.metrics import fid_floor_block
from ditlaws.laws.parametric import ESTIMATORS, SOLVERS, fit_parametric
from ditlaws.laws.table import FLOP_CONVENTIONS, RunTable
from ditlaws.options import option


@dataclass
class FitOptions:
    """How fit_laws.py fits (every field is also a flag of fit_laws.py)."""

    n_boot: int = option(1000, help="bootstrap resamples of Approach 2 (and of Approach 3 unless "
                                    "--parametric-bootstrap)", ge=20, flag="--bootstrap")
    bootstrap: str = option("noise", help="Approach 2's bootstrap: noise (losses redrawn around the parabolas with "
                                          "the measured noise) or resample (runs resampled within budgets)",
                            choices=BOOTSTRAP_METHODS, flag="--bootstrap-method")
    noise_rel: float | None = option(None, help="measured seed-to-seed relative loss noise for the noise bootstrap "
                                                "(default: estimated from the parabola residuals)", gt=0)
    parametric_boot: int | None = option(None, help="Approach 3 bootstrap resamples (default: --bootstrap)", ge=10,
                                         flag="--parametric-bootstrap")
    parametric_bootstrap_method: str = option("resample", help="Approach 3's bootstrap: resample runs, or noise "
                                              "around the fitted surface", choices=A3_BOOTSTRAP_METHODS)
    estimator: str = option("huber", help="Approach 3's estimator: huber (Hoffmann et al.: summed Huber loss, "
                                          "delta 1e-3) or mle (Huber likelihood with a free noise scale sigma)",
                            choices=ESTIMATORS)
    a3_solver: str = option("vpnls", help="Approach 3's search: vpnls (variable projection: a grid over the two "
                                          "exponents, E, A, B >= 0 by non-negative least squares) or lbfgs "
                                          "(Chinchilla's 5-D grid of starts); both end with L-BFGS-B",
                            choices=SOLVERS)
    a2_correction: str = option("none", help="Approach 2's own bias (its parabolas run noise-free on Approach 3's "
                                             "surface over the study's runs; always measured and reported): "
                                             "surface removes it from the budgets' optima, none keeps the raw "
                                             "vertices and widens the intervals by it", choices=CORRECTIONS)
    seed: int = option(0, help="random seed of every bootstrap", ge=0)
    flops: str = option("6nd", help="compute convention: 6nd (C = 6·N·D) or closed_form (the runs' C_closed_form)",
                        choices=FLOP_CONVENTIONS)
    budget_tolerance: float = option(0.05, help="runs whose budgets agree within this relative tolerance (in log "
                                                "space) form one isoFLOP group", ge=0, lt=10)
    optimum: str = option("parabola", help="per-budget optimum estimator", choices=OPTIMUM_METHODS)
    fid_method: str = option("parabola", help="generation metrics at the optimum: a parabola of their log in ln N "
                                              "at N_opt, or the nearest run", choices=FID_METHODS)
    allow_edge: bool = option(False, help="keep budgets whose minimum lies outside the sampled sizes (their "
                                          "optimum is then an extrapolation)")
    window: float | None = option(None, help="fit each budget's parabola only to runs within this factor in N of "
                                             "its best run (default: all runs, as the paper)", gt=1,
                                  flag="--fit-window", metavar="F")
    screen_outliers: bool = option(False, help="drop one run per budget whose studentized residual exceeds 4")
    min_points: int = option(3, help="fewest distinct sizes for a budget to count", ge=3)
    holdout: int = option(2, help="backtest: hold out up to this many largest budgets", ge=0)
    parametric: bool = option(True, help="skip Approach 3", flag="--no-parametric")
    warn_points: int = 5
    min_budgets: int = 3

    @property
    def a3_boot(self) -> int:
        return self.n_boot if self.parametric_boot is None else self.parametric_boot


@dataclass
class StudyFit:
    study: str
    table: RunTable
    options: FitOptions
    fits: list[BudgetFit]
    used: np.ndarray  # indices into fits of the budgets that passed the checks
    a2_status: str = "fitted"
    a2_reason: str = ""
    draws: Draws | None = None
    optima: OptimaDraws | None = None
    laws: dict[str, LawFit] = field(default_factory=dict)
    loss_choice: dict = field(default_factory=dict)
    fid_choice: dict = field(default_factory=dict)
    a3: Approach3Fit = field(default_factory=lambda: Approach3Fit("skipped", "Approach 3 not requested"))
    a2_bias: A2Bias = field(default_factory=lambda: A2Bias("none", note="Approach 2 not fitted"))
    a2_factors: dict[str, np.ndarray] | None = None  # ln bias removed from each budget's optima, when corrected
    warnings: list[str] = field(default_factory=list)

    @property
    def C(self) -> np.ndarray:
        return np.array([f.C for f in self.fits])

    def point_optima(self) -> dict[str, np.ndarray]:
        point = point_optima(self.fits)
        return point if self.a2_factors is None else corrected(point, self.a2_factors)

    def reference(self) -> Reference | None:
        if self.a2_status != "fitted":
            return None
        point = self.point_optima()
        return Reference(C=self.C[self.used], point={q: point[q][self.used] for q in ("N_opt", "D_opt", "L_opt")},
                         draws={q: self.optima.of(q)[:, self.used] for q in ("N_opt", "D_opt", "L_opt")})

    @property
    def headline(self) -> dict[str, list[str]]:
        out = {}
        if self.a2_status == "fitted" and self.loss_choice.get("headline"):
            out["L_opt"] = ["approach2", self.loss_choice["headline"]]
        elif self.a3.status == "fitted":
            out["L_opt"] = ["approach3", "L_opt"]
        if self.a2_status == "fitted" and self.fid_choice.get("headline"):
            out["FID"] = ["approach2", self.fid_choice["headline"]]
        return out


def _surface(table: RunTable, options: FitOptions):
    """Approach 3's point estimate, for measuring Approach 2's bias (None with too few runs)."""
    from ditlaws.laws.approach3 import MIN_RUNS

    if len(table) < MIN_RUNS:
        return None
    return fit_parametric(table.N, table.D, table.loss, estimator=options.estimator, solver=options.a3_solver)


def skipped_reason(fits: list[BudgetFit], used: int, needed: int) -> str:
    counts = Counter(flag for f in fits for flag in (f.flags or ["ok"]) if not f.used)
    why = ", ".join(f"{n} {flag}" for flag, n in counts.most_common())
    return (f"Approach 2 skipped: {used} of {len(fits)} budget group(s) pass the isoFLOP checks, a scaling-law fit "
            f"needs at least {needed}" + (f" (excluded: {why})" if why else ""))


def fit_study(table: RunTable, options: FitOptions, rng: np.random.Generator, study: str | None = None) -> StudyFit:
    study = study or (table.studies[0] if len(table) else "")
    fits = fit_isoflops(table, min_points=options.min_points, warn_points=options.warn_points,
                        allow_edge=options.allow_edge, screen_outliers=options.screen_outliers,
                        method=options.optimum, fid_method=options.fid_method, window=options.window)
    used = np.array([i for i, f in enumerate(fits) if f.used], dtype=int)
    sf = StudyFit(study=study, table=table, options=options, fits=fits, used=used)
    sf.warnings += table.warnings
    surface = None
    if len(used) >= options.min_budgets:
        sf.draws = draw(fits, options.n_boot, rng, options.bootstrap, options.noise_rel)
        sf.optima = budget_optima(fits, sf.draws, allow_edge=options.allow_edge, fid_method=options.fid_method,
                                  method=options.optimum)
        surface = _surface(table, options)
        sf.a2_bias = measure(fits, used, surface.theta if surface is not None else None)
        if options.a2_correction == "surface" and sf.a2_bias.status == "measured":
            sf.a2_factors = correction_factors(sf.a2_bias, len(fits))
            sf.optima = correct_optima(sf.optima, sf.a2_factors)
        floor = fid_floor_block(table)
        sf.laws = fit_laws(fits, used, sf.optima, sf.point_optima(), floor["value"] if floor else None)
        for law in sf.laws.values():
            if law.quantity in ("N_opt", "D_opt", "L_opt"):
                law.bias = law_bias(sf.a2_bias, law.form, law.quantity, sf.a2_factors is not None)
        sf.loss_choice = choose_loss_headline(sf.laws)
        sf.fid_choice = choose_fid_headline(sf.laws)
        invalid = 1.0 - sf.optima.valid[:, used].mean()
        if invalid > 0.05:
            sf.warnings.append(f"{invalid:.0%} of (resample, budget) vertex fits had no interior minimum and were "
                               f"dropped from their resample; the intervals may be optimistic")
    else:
        sf.a2_status, sf.a2_reason = "skipped", skipped_reason(fits, len(used), options.min_budgets)
    if options.parametric:
        sf.a3 = fit_approach3(table, rng, estimator=options.estimator, solver=options.a3_solver,
                              n_boot=options.a3_boot, model=surface,
                              method=options.parametric_bootstrap_method, reference=sf.reference())
        if sf.a3.status == "fitted":
            m = sf.a3.model
            sf.warnings += list(m.messages) + [f"Approach 3: the point estimate of {k} lies outside its 90 % "
                                               f"bootstrap interval" for k in sf.a3.point_outside]
    if sf.a2_status != "fitted" and sf.a3.status != "fitted":
        a3 = "" if not options.parametric else f"; {sf.a3.reason}"
        raise UserError(f"{table.source}: study '{study}': nothing can be fitted. {sf.a2_reason}{a3}")
    return sf
