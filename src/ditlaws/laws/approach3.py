"""Approach 3 end to end: L(N, D) on every run (no isoFLOP groups needed), its bootstrap, its error models.

* The point fit (``parametric.fit_parametric``, estimator ``huber`` or ``mle``, solver ``vpnls`` or ``lbfgs``) uses
  all runs of the study.
* The bootstrap resamples runs with replacement (default; or ``noise``: losses redrawn around the fitted surface
  with its residual scale) and refits every resample at once from the point estimate (``refit``: Levenberg-Marquardt
  in all five parameters, for either solver; the variable-projection refit ``vpnls.vp_refit`` finds the same optima,
  tests/test_laws_vpnls.py, at ~30x the time, so it is not the default path).
* Error models from nested backtests: the surface refitted on the runs of the smallest budget groups only (at up
  to 4 origins from the middle group on; refits warm-started from the full fit), predicting what lies beyond.
  N_opt, D_opt and L_opt are compared with Approach 2's optima of the later budgets where those exist; without
  them the loss model compares the later runs' losses (binned in compute, up to 4 bins per origin) and N_opt /
  D_opt get no model (there is nothing measured to compare them with).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ditlaws.laws import forms
from ditlaws.laws.bootstrap import summarize
from ditlaws.laws.extrapolation import ErrorModel, Pair, estimate, log_var, phi
from ditlaws.laws.parametric import ParametricLoss, Problem, fit_parametric, residuals
from ditlaws.laws.refit import refit, resample_weights
from ditlaws.laws.table import RunTable

A3_BOOTSTRAP_METHODS = ("resample", "noise")
MIN_RUNS = 6  # five parameters and one spare run
NESTED_DRAWS = 100
MAX_ORIGINS = 4
QUANTITIES = ("N_opt", "D_opt", "L_opt")


@dataclass
class Reference:
    """Approach 2's optima of the used budgets (ascending C), for comparing Approach 3 against."""

    C: np.ndarray
    point: dict[str, np.ndarray]  # N_opt, D_opt, L_opt [B]
    draws: dict[str, np.ndarray]  # [R, B]


@dataclass
class Approach3Fit:
    status: str  # "fitted" or "skipped"
    reason: str = ""
    model: ParametricLoss | None = None
    draws: np.ndarray | None = None  # [R, 5] theta, float32-exact
    method: str = "resample"
    error_models: dict[str, ErrorModel] = field(default_factory=dict)
    table: RunTable | None = None
    point_outside: list[str] = field(default_factory=list)

    @property
    def C_max(self) -> float:
        return float(self.table.C.max())

    def as_dict(self) -> dict:
        if self.status != "fitted":
            return {"status": self.status, "reason": self.reason}
        m, d = self.model, self.draws
        samples = {"E": np.exp(d[:, 2]), "A": np.exp(d[:, 0]), "B": np.exp(d[:, 1]), "alpha": d[:, 3],
                   "beta": d[:, 4], **{f"exponent_{k}": v for k, v in forms.parametric_exponents(d).items()}}
        t = self.table
        laws = {q: {"form": "parametric", "quantity": q, "fitted": q, "transform": "identity",
                    "higher_is_better": False, "label": f"{q} (Approach 3)", "C_max": self.C_max,
                    "error_model": self.error_models[q].as_dict()} for q in QUANTITIES}
        return {"status": "fitted", "estimator": m.estimator, "solver": m.solver,
                "params": {"E": m.E, "A": m.A, "B": m.B, "alpha": m.alpha, "beta": m.beta},
                "theta": m.theta.tolist(), "theta_names": list(forms.THETA),
                "exponents": {"N_opt": m.N_exponent, "D_opt": m.D_exponent}, "G": m.G,
                "objective": m.objective, "sigma": m.sigma, "neg_log_likelihood": m.neg_log_likelihood,
                "flags": list(m.flags) + [f"point_outside_ci90:{k}" for k in self.point_outside],
                "messages": list(m.messages) + [f"Approach 3: the point estimate of {k} lies outside its 90 % "
                                                f"bootstrap interval" for k in self.point_outside],
                "summary": {k: summarize(v) for k, v in samples.items()},
                "bootstrap": {"method": self.method, "n": int(len(d)), "n_valid": int(np.isfinite(d[:, 0]).sum()),
                              "warm_start": "point estimate", "refit": "levenberg-marquardt"},
                "draws": forms.encode_draws(d, forms.THETA), "laws": laws, "n_runs": len(t), "C_max": self.C_max,
                "runs": {"run_id": t.run_id.tolist(), "budget": t.budget.tolist(), "C": t.C.tolist(),
                         "N": t.N.tolist(), "D": t.D.tolist(), "loss": t.loss.tolist(),
                         "predicted": m(t.N, t.D).tolist()}}


def fit_approach3(table: RunTable, rng: np.random.Generator, *, estimator: str = "huber", solver: str = "vpnls",
                  n_boot: int = 1000, method: str = "resample", reference: Reference | None = None,
                  model: ParametricLoss | None = None) -> Approach3Fit:
    """Approach 3 on every run of the table (``model``: its point estimate when already fitted on this table)."""
    if len(table) < MIN_RUNS:
        return Approach3Fit("skipped", f"Approach 3 skipped: {len(table)} run(s), the parametric fit needs at "
                                       f"least {MIN_RUNS}")
    if model is None:
        model = fit_parametric(table.N, table.D, table.loss, estimator=estimator, solver=solver)
    p = Problem.of(table.N, table.D, table.loss)
    draws = forms.quantize(bootstrap(model, p, n_boot, rng, method, estimator))
    fit = Approach3Fit("fitted", model=model, draws=draws, method=method, table=table)
    fit.error_models = error_models(model.theta, p, table, np.ones(len(table), dtype=bool), rng, estimator,
                                    reference)
    fit.point_outside = _outside(model, draws)
    return fit


def bootstrap(model: ParametricLoss, p: Problem, n_boot: int, rng: np.random.Generator, method: str,
              estimator: str, train: np.ndarray | None = None) -> np.ndarray:
    """[n_boot, 5] refits: runs resampled with replacement (within ``train``), or losses redrawn around the fit."""
    n = len(p.lnL)
    train = np.ones(n, dtype=bool) if train is None else train
    weights = np.zeros((n_boot, n))
    if method == "resample":
        weights[:, train] = resample_weights(int(train.sum()), n_boot, rng)
        return refit(model.theta, p, weights, estimator=estimator)
    weights[:, train] = 1.0
    r, _ = residuals(model.theta, p)
    scale = float(np.sqrt(np.mean(r[train] ** 2) * train.sum() / max(train.sum() - 5, 1)))
    lnL = (p.lnL + r)[None, :] + scale * rng.standard_normal((n_boot, n))
    return refit(model.theta, p, weights, lnL=lnL, estimator=estimator)


def _outside(model: ParametricLoss, draws: np.ndarray) -> list[str]:
    point = {"E": model.E, "A": model.A, "B": model.B, "alpha": model.alpha, "beta": model.beta,
             "exponent_N_opt": model.N_exponent, "exponent_D_opt": model.D_exponent}
    samples = {"E": np.exp(draws[:, 2]), "A": np.exp(draws[:, 0]), "B": np.exp(draws[:, 1]), "alpha": draws[:, 3],
               "beta": draws[:, 4], **{f"exponent_{k}": v for k, v in forms.parametric_exponents(draws).items()}}
    out = []
    for k, v in samples.items():
        s = summarize(v)
        if s["n"] and not s["ci90"][0] <= point[k] <= s["ci90"][1]:
            out.append(k)
    return out


def origins(labels: np.ndarray, train: np.ndarray) -> list[float]:
    """Up to MAX_ORIGINS cut points (a group label: fit on groups <= it), from the middle group to the
    second-largest of the training groups."""
    groups = np.unique(labels[train])
    if len(groups) < 3:
        return []
    ks = sorted({int(round(k)) for k in np.linspace(math.ceil(len(groups) / 2), len(groups) - 1, MAX_ORIGINS)})
    return [float(groups[k - 1]) for k in ks if k >= 2]


def error_models(theta: np.ndarray, p: Problem, table: RunTable, train: np.ndarray, rng: np.random.Generator,
                 estimator: str, reference: Reference | None) -> dict[str, ErrorModel]:
    """Error models of N_opt, D_opt and L_opt from nested refits on the training runs (see the module doc)."""
    labels = table.budget
    cuts = [c for c in origins(labels, train) if (train & (labels <= c)).sum() >= MIN_RUNS]
    pairs = {q: [] for q in QUANTITIES}
    run_pairs = []
    if cuts:
        n = len(p.lnL)
        K, R = len(cuts), NESTED_DRAWS
        masks = np.stack([train & (labels <= c) for c in cuts])
        weights = np.zeros((K * (R + 1), n))
        for k, mask in enumerate(masks):
            weights[k * (R + 1)] = mask
            weights[k * (R + 1) + 1:(k + 1) * (R + 1), mask] = resample_weights(int(mask.sum()), R, rng)
        thetas = refit(theta, p, weights, estimator=estimator).reshape(K, R + 1, 5)
        for k, mask in enumerate(masks):
            point, boot = thetas[k, 0], thetas[k, 1:]
            if not np.all(np.isfinite(point)):
                continue
            origin_C = float(table.C[mask].max())
            design = np.log(np.unique(labels[mask]))
            if reference is not None:
                later = reference.C > origin_C * (1 + 1e-9)
                for j in np.flatnonzero(later):
                    pred = forms.parametric_optimum(point, [reference.C[j]])
                    pred_draws = forms.parametric_optimum(boot, [reference.C[j]])
                    for q in QUANTITIES:
                        actual = reference.point[q][j]
                        v = log_var(pred_draws[q][:, 0]) + log_var(reference.draws[q][:, j])
                        pairs[q].append(Pair(origin_C, float(reference.C[j]),
                                             float(np.log(actual) - np.log(pred[q][0])), v,
                                             float(phi(design, np.log(reference.C[j])))))
            run_pairs += _run_pairs(point, boot, p, table, train & ~mask, origin_C, design)
    if not pairs["L_opt"]:
        pairs["L_opt"] = run_pairs
    needs = {"N_opt": "needs Approach 2's optima at budgets beyond a nested fit (isoFLOP groups)",
             "D_opt": "needs Approach 2's optima at budgets beyond a nested fit (isoFLOP groups)",
             "L_opt": "needs at least 3 compute groups with 6 runs below the largest"}
    design_C = np.unique(labels[train])
    return {q: estimate(pairs[q], design_C, needs=needs[q]) for q in QUANTITIES}


def _run_pairs(point: np.ndarray, boot: np.ndarray, p: Problem, table: RunTable, later: np.ndarray,
               origin_C: float, design: np.ndarray) -> list[Pair]:
    """Loss errors of the runs beyond an origin, averaged in up to 4 consecutive compute bins."""
    idx = np.flatnonzero(later & (table.C > origin_C))
    if not len(idx):
        return []
    idx = idx[np.argsort(table.C[idx], kind="stable")]
    sigma2 = float(np.mean(residuals(point, p)[0][~later] ** 2))
    pred = np.log(forms.parametric_loss(point, table.N[idx], table.D[idx]))
    pred_draws = np.log(forms.parametric_loss(boot, table.N[idx], table.D[idx]))
    out = []
    for chunk in np.array_split(np.arange(len(idx)), min(4, len(idx))):
        e = float(np.mean(p.lnL[idx[chunk]] - pred[chunk]))
        v = float(np.nanvar(np.nanmean(pred_draws[:, chunk], axis=1), ddof=1)) + sigma2 / len(chunk)
        C_bin = float(np.exp(np.mean(np.log(table.C[idx[chunk]]))))
        out.append(Pair(origin_C, C_bin, e, v, float(phi(design, np.log(C_bin)))))
    return out
