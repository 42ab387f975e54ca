"""Approach 2, step 2: laws of the budgets' optima against C, their bootstrap draws and extrapolation-error models.

From the budgets that pass the isoFLOP checks: N_opt, D_opt and L_opt as power laws k·C^e (the paper's), the loss
also as L_opt = E + A·C^(-alpha) (``L_opt_floor``), and each generation metric at the optimum (FID, 1 - accuracy,
CLIP score) as a power law; FID also as FID = F + A·C^(-alpha) above its measured real-vs-real floor F
(``FID_floor``: F is measured, not fitted), when the runs measured one and every budget's FID lies above it. Each
law carries its draws (one refit per bootstrap resample of the budgets' optima, all at once, the optima widened by
the law's excess scatter: ``excess_scatter``) and an error model from nested backtests
(``ditlaws.laws.extrapolation``). The headline loss law, and the headline FID law, is the one with the smaller
nested-backtest error on the pairs both can be tested on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ditlaws.laws import forms
from ditlaws.laws.bootstrap import OptimaDraws, summarize
from ditlaws.laws.extrapolation import MIN_PAIRS, ErrorModel, Pair, estimate, log_var, phi
from ditlaws.laws.isoflop import BudgetFit
from ditlaws.laws.metrics import BY_LAW
from ditlaws.laws.powerlaw import FLOOR_MIN_POINTS, fit_floor, fit_power_law, floor_flags, floor_min_points, power_draws

NESTED_DRAWS = 200  # resamples used for the noise variances of nested-backtest pairs
SCATTER_SEED = 20241008  # the excess scatter's normal draws: the same for every law and refit (common random numbers)
BASE_LABELS = {"N_opt": "optimal parameters N_opt", "D_opt": "optimal tokens D_opt", "L_opt": "loss at the optimum",
               "L_opt_floor": "loss at the optimum (with a floor)",
               "FID_floor": "FID at the optimum (with its floor)"}


@dataclass
class LawFit:
    """One fitted law: point parameters, bootstrap draws, the points it was fitted on, its error model."""

    name: str
    form: str  # "power" or "floor"
    quantity: str  # N_opt, D_opt, L_opt, or a metric's law name
    params: np.ndarray
    draws: np.ndarray  # [R, p], float32-exact
    C: np.ndarray  # budgets fitted on
    y: np.ndarray  # fitted quantity at those budgets (e.g. 1 - accuracy)
    r2: float | None = None
    error_model: ErrorModel = field(default_factory=lambda: ErrorModel("none"))
    flags: list[str] = field(default_factory=list)
    bias: dict | None = None  # Approach 2's own bias of this law (``ditlaws.laws.a2bias``), see ``as_dict``
    excess_scatter: float = 0.0  # sd (log space) of the budgets' scatter about the law beyond their bootstrap noise
    fixed_floor: float | None = None  # a floor law's E when it was measured, not fitted (FID's real-vs-real floor)

    @property
    def C_max(self) -> float:
        return float(self.C.max())

    @property
    def metric(self):
        return BY_LAW.get(self.quantity)

    def as_dict(self) -> dict:
        names = forms.POWER_PARAMS if self.form == "power" else forms.FLOOR_PARAMS
        m = self.metric
        transform = m.transform if m else "identity"
        shown = m.from_fitted(self.y) if m else self.y
        out = {"form": self.form, "quantity": self.quantity, "fitted": m.fitted if m else self.quantity,
               "transform": transform, "higher_is_better": bool(m.higher_is_better) if m else False,
               "label": BASE_LABELS.get(self.name) or (m.label if m else self.name),
               "params": dict(zip(names, map(float, self.params))),
               "summary": {k: summarize(self.draws[:, i]) for i, k in enumerate(names)},
               "n_budgets": len(self.C), "C_max": self.C_max, "r2": self.r2, "flags": self.flags,
               "fitted_on": {"C": self.C.tolist(), "value": shown.tolist()},
               "draws": forms.encode_draws(self.draws, names), "excess_scatter": self.excess_scatter,
               "error_model": self.error_model.as_dict()}
        if self.bias is not None:
            out["a2_bias"] = self.bias
        if self.fixed_floor is not None:
            out["fixed_floor"] = self.fixed_floor
        if self.form == "power":
            out["coef"], out["exponent"] = float(np.exp(self.params[0])), float(self.params[1])
        else:
            out["E"], out["A"], out["alpha"] = float(self.params[0]), float(np.exp(self.params[1])), \
                float(self.params[2])
        return out


def _point_params(form: str, C: np.ndarray, y: np.ndarray,
                  fixed_floor: float | None = None) -> tuple[np.ndarray, float | None]:
    if form == "power":
        law = fit_power_law(C, y)
        return law.params, law.r2
    return fit_floor(C, y[None, :], E=fixed_floor)[0], None


def _draw_params(form: str, C: np.ndarray, y: np.ndarray, fixed_floor: float | None = None) -> np.ndarray:
    return power_draws(C, y) if form == "power" else fit_floor(C, y, E=fixed_floor)


MIN_TRAIN = {"power": 3, "floor": FLOOR_MIN_POINTS}  # fewest budgets of a nested refit


def fewest_budgets(form: str, fixed_floor: float | None = None) -> int:
    """Fewest budgets a law of this form is fitted on (a floor measured beforehand is one parameter fewer)."""
    return floor_min_points(fixed_floor) if form == "floor" else MIN_TRAIN[form]


def budgets_for_error_model(form: str, fixed_floor: float | None = None) -> int:
    """Fewest budgets whose nested refits (``nested_pairs``: the first k >= fewest_budgets predict each later one) give
    the MIN_PAIRS pairs an error model needs: n budgets give (n - m)(n - m + 1)/2 pairs, m = fewest_budgets(form)."""
    m = fewest_budgets(form, fixed_floor)
    n = m + 1
    while (n - m) * (n - m + 1) // 2 < MIN_PAIRS:
        n += 1
    return n


def nested_pairs(form: str, C: np.ndarray, y: np.ndarray, y_draws: np.ndarray, min_train: int | None = None,
                 first_origin: int | None = None, fixed_floor: float | None = None) -> list[Pair]:
    """Fit on the first k points (C sorted ascending), predict every later point, for every possible k."""
    min_train = min_train or fewest_budgets(form, fixed_floor)
    sub = y_draws[:NESTED_DRAWS]
    pairs = []
    for k in range(max(min_train, first_origin or 0), len(C)):
        params, _ = _point_params(form, C[:k], y[:k], fixed_floor)
        pdraws = _draw_params(form, C[:k], sub[:, :k], fixed_floor)
        later = C[k:]
        basis = phi(np.log(C[:k]), np.log(later))
        pred = forms.evaluate(form, params, later)
        pred_draws = forms.evaluate(form, pdraws, later)
        for j in range(len(later)):
            v = log_var(pred_draws[:, j]) + log_var(sub[:, k + j])
            with np.errstate(divide="ignore", invalid="ignore"):
                e = float(np.log(y[k + j]) - np.log(pred[j]))
            pairs.append(Pair(origin_C=float(C[k - 1]), C=float(later[j]), error=e, var_noise=v, phi=float(basis[j])))
    return pairs


def excess_scatter(form: str, C: np.ndarray, y: np.ndarray, y_draws: np.ndarray,
                   params: np.ndarray | None = None, fixed_floor: float | None = None) -> float:
    """How far the budgets' optima scatter about the law beyond their own bootstrap noise: the sd tau (log space)
    of a between-budget spread, by moments (the residual variance about the point law, per degree of freedom, less
    the budgets' mean bootstrap variance; 0 when the bootstrap explains the scatter or no degree of freedom is
    left). A parabola's bootstrap trusts its shape, so a budget whose curve is off-centre or asymmetric carries an
    error it does not show; the law's scatter reveals it. ``params``: the point law, when the caller has it."""
    params = _point_params(form, C, y, fixed_floor)[0] if params is None else params
    dof = len(C) - len(params) + (fixed_floor is not None)
    if dof <= 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = np.log(y) - np.log(forms.evaluate(form, params, C))
    if not np.all(np.isfinite(resid)):
        return 0.0
    noise = float(np.mean([log_var(y_draws[:, i]) for i in range(len(C))]))
    return float(np.sqrt(max(0.0, float(np.sum(resid**2)) / dof - noise)))


def with_scatter(y_draws: np.ndarray, tau: float) -> np.ndarray:
    """The budgets' draws, each also multiplied by exp(tau·z), z standard normal (seeded; NaN draws stay NaN)."""
    if tau <= 0:
        return y_draws
    return y_draws * np.exp(tau * np.random.default_rng(SCATTER_SEED).standard_normal(y_draws.shape))


def fit_law(name: str, form: str, quantity: str, C: np.ndarray, y: np.ndarray, y_draws: np.ndarray,
            fixed_floor: float | None = None) -> LawFit | None:
    """A law on the budgets where its quantity is known (None when there are too few). The budgets' draws carry
    their excess scatter (``excess_scatter``) before the law's draws and its nested backtests are made, so the law's
    intervals reflect how much its budgets really scatter, and a nested backtest's actual value counts that
    scatter as noise, not as the law's misfit. ``fixed_floor``: a floor law's E, measured beforehand."""
    ok = np.isfinite(y) & (y > 0)
    if ok.sum() < fewest_budgets(form, fixed_floor):
        return None
    C, y, y_draws = C[ok], y[ok], y_draws[:, ok]
    params, r2 = _point_params(form, C, y, fixed_floor)
    tau = excess_scatter(form, C, y, y_draws, params, fixed_floor)
    y_draws = with_scatter(y_draws, tau)
    draws = forms.quantize(_draw_params(form, C, y_draws, fixed_floor))
    law = LawFit(name, form, quantity, params, draws, C, y, r2, excess_scatter=tau, fixed_floor=fixed_floor)
    needs = (f"an extrapolation-error model needs at least {budgets_for_error_model(form, fixed_floor)} budgets "
             f"with {quantity} (it has {len(C)})")
    law.error_model = estimate(nested_pairs(form, C, y, y_draws, fixed_floor=fixed_floor), C, needs=needs)
    if form == "floor":
        law.flags = floor_flags(params)
    return law


def fit_fid_floor(C: np.ndarray, fid: np.ndarray, fid_draws: np.ndarray, floor: float | None) -> LawFit | None:
    """FID = F + A·C^(-alpha) with F the runs' measured real-vs-real floor (``FID_floor``); None without a floor or
    where a budget's FID at its optimum does not lie above it (there the excess over the floor is noise)."""
    ok = np.isfinite(fid) & (fid > 0)
    if floor is None or not ok.any() or np.any(fid[ok] <= floor):
        return None
    return fit_law("FID_floor", "floor", "FID", C, fid, fid_draws, fixed_floor=float(floor))


def fit_laws(fits: list[BudgetFit], used: np.ndarray, optima: OptimaDraws,
             point: dict[str, np.ndarray] | None = None, fid_floor: float | None = None) -> dict[str, LawFit]:
    """Every law over the used budgets (``used`` indexes ``fits``, ascending in C); ``point``: the budgets' optima
    (default: the parabolas' vertices; the bias-corrected ones with ``--a2-correction surface``); ``fid_floor``:
    the runs' real-vs-real FID, for ``FID_floor``."""
    C = np.array([fits[i].C for i in used])
    point = point_optima(fits) if point is None else point
    laws = {}
    for name in ("N_opt", "D_opt", "L_opt"):
        law = fit_law(name, "power", name, C, point[name][used], optima.of(name)[:, used])
        if law:
            laws[name] = law
    floor = fit_law("L_opt_floor", "floor", "L_opt", C, point["L_opt"][used], optima.of("L_opt")[:, used])
    if floor:
        laws["L_opt_floor"] = floor
    for name in optima.metrics:
        law = fit_law(name, "power", name, C, point[name][used], optima.of(name)[:, used])
        if law:
            laws[name] = law
        if law and name == "FID":  # beside it, as the loss's floor law
            floor_law = fit_fid_floor(C, point["FID"][used], optima.of("FID")[:, used], fid_floor)
            if floor_law:
                laws["FID_floor"] = floor_law
    return laws


def corrected(point: dict[str, np.ndarray], ln_factor: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Optima [..., B] with each quantity divided by its per-budget bias factor exp(ln_factor) (others unchanged)."""
    return {k: v * np.exp(-ln_factor[k]) if k in ln_factor else v for k, v in point.items()}


def point_optima(fits: list[BudgetFit]) -> dict[str, np.ndarray]:
    """The full-data optimum of every budget (NaN where it has none), metrics in their fitted space."""
    out = {
        "N_opt": np.array([f.N_opt for f in fits]),
        "D_opt": np.array([f.D_opt if np.isfinite(f.x_opt) else np.nan for f in fits]),
        "L_opt": np.array([f.L_opt for f in fits]),
    }
    for law in (fits[0].metrics if fits else {}):
        out[law] = np.array([f.metric_opt.get(law, np.nan) for f in fits])
    return out


def choose_headline(laws: dict[str, LawFit], pure_name: str, floor_name: str) -> dict:
    """Of a quantity's pure power law and its floor law, the one with the smaller nested-backtest RMS error on the
    pairs both can be tested on (the pure law, the paper's, where the floor law cannot be backtested). Against a
    measured floor (FID's) the pure law's predictions count clipped at it, as predictions are."""
    pure, floor = laws.get(pure_name), laws.get(floor_name)
    if pure is None:
        return {"headline": floor_name if floor else None, "rule": "only one law fitted"}
    if floor is None:
        why = (f"the floor law needs at least {FLOOR_MIN_POINTS} budgets" if pure_name == "L_opt" else
               "no floor law: the runs measured no real-vs-real floor, or a budget's FID does not lie above it")
        return {"headline": pure_name, "rule": why}
    first = fewest_budgets(floor.form, floor.fixed_floor)
    pure_pairs = [p for p in pure.error_model.pairs if np.sum(pure.C <= p.origin_C) >= first]
    if not pure_pairs or floor.error_model.status != "ok":
        return {"headline": pure_name, "rule": f"too few budgets to backtest the floor law (it needs "
                                               f"{first + 1}); the pure power law (the paper's) is kept"}
    pure_errors = [p.error for p in pure_pairs]
    if floor.fixed_floor is not None:  # the pure law as predictions give it: never below the measured floor
        actual = dict(zip(pure.C.tolist(), pure.y.tolist()))
        pure_errors = [min(e, float(np.log(actual[p.C] / floor.fixed_floor))) for e, p in zip(pure_errors, pure_pairs)]
    rms = {pure_name: float(np.sqrt(np.mean(np.square(pure_errors)))),
           floor_name: float(np.sqrt(np.mean([p.error**2 for p in floor.error_model.pairs])))}
    headline = floor_name if rms[floor_name] < rms[pure_name] else pure_name
    return {"headline": headline, "rule": f"smaller RMS error of ln {pure.quantity} in nested backtests (same pairs)",
            "backtest_rms": rms, "n_pairs": len(pure_pairs)}


def choose_loss_headline(laws: dict[str, LawFit]) -> dict:
    """The loss law (pure or with a fitted floor) that backtests better."""
    return choose_headline(laws, "L_opt", "L_opt_floor")


def choose_fid_headline(laws: dict[str, LawFit]) -> dict:
    """The FID law (pure, the paper's, or above its measured real-vs-real floor) that backtests better; {} when no
    FID was measured."""
    return choose_headline(laws, "FID", "FID_floor") if "FID" in laws else {}
