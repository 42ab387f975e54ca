"""Bootstrap resamples of an isoFLOP grid, and the budget optima of every resample computed at once.

Two ways to make a resample, both applied within each budget so every budget keeps its own size grid:

* ``noise`` (default): keep the sizes, replace each loss by the fitted curve times exp(sigma·z) (≈ 1 + sigma·z).
  sigma is the measured seed-to-seed relative noise when given (``noise_rel``), otherwise the parabola residuals
  pooled over budgets, in which case sigma itself is redrawn per resample from its chi-square distribution
  so a noise level estimated from few points widens the intervals as it should. It is the default because it
  stays well defined with the 4-8 sizes per budget of real sweeps and its 90 % intervals cover ~90 % of the time
  on synthetic truth (tests/test_laws_synthetic.py); it trusts the parabola's shape.
* ``resample``: draw the budget's runs with replacement. It assumes nothing about the noise or the curve's shape,
  so misfit shows up as width; on the synthetic truth it over-covers (~97 % for a nominal 90 %), and with few runs
  per budget it produces degenerate draws (fewer than 3 distinct sizes), which are dropped and counted. Use it as
  a check when the parabola fits poorly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ditlaws.laws.isoflop import BudgetFit, parabola_design, pooled_residual, solve_parabolas, vertex

BOOTSTRAP_METHODS = ("resample", "noise")


@dataclass
class Draws:
    """Resampled data per budget: run indices [R, n_b], losses [R, n_b] and ln FID [R, n_b]."""

    idx: list[np.ndarray]
    loss: list[np.ndarray]
    ln_fid: list[np.ndarray]
    method: str
    sigma_rel: float
    sigma_dof: int

    @property
    def n(self) -> int:
        return self.idx[0].shape[0] if self.idx else 0


def draw(fits: list[BudgetFit], n_boot: int, rng: np.random.Generator, method: str = "resample",
         noise_rel: float | None = None) -> Draws:
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"bootstrap method {method!r}; valid: {BOOTSTRAP_METHODS}")
    sigma, dof = (noise_rel, 0) if noise_rel is not None else pooled_residual(fits)
    if method == "noise" and not np.isfinite(sigma):
        sigma, dof = 0.0, 0
    sigma_draws = np.full(n_boot, sigma)
    if method == "noise" and noise_rel is None and dof > 0:
        sigma_draws = sigma * np.sqrt(dof / rng.chisquare(dof, size=n_boot))
    fid_sigma = _fid_residual(fits)
    idx, loss, ln_fid = [], [], []
    for f in fits:
        n = f.n_points
        with np.errstate(divide="ignore", invalid="ignore"):
            lf = np.log(f.fid)
        if method == "resample":
            i = rng.integers(0, n, size=(n_boot, n))
            idx.append(i)
            loss.append(f.loss[i])
            ln_fid.append(lf[i])
        else:
            idx.append(np.broadcast_to(np.arange(n), (n_boot, n)))
            centre = f.predict(f.x) if f.coef is not None else f.loss
            centre = np.where(centre > 0, centre, f.loss)  # a steep parabola can dip below 0 between points
            # Multiplicative in log space: equal to (1 + sigma·z) to first order, and never a negative loss
            # when the measured noise is large (small, cliff-like demo grids).
            loss.append(centre * np.exp(sigma_draws[:, None] * rng.standard_normal((n_boot, n))))
            fid_centre = lf
            if f.fid_coef is not None:
                fid_centre = np.where(np.isfinite(lf), parabola_design(f.x, f.centre, f.scale) @ f.fid_coef, lf)
            ln_fid.append(fid_centre + fid_sigma * rng.standard_normal((n_boot, n)))
    return Draws(idx, loss, ln_fid, method, float(sigma), int(dof))


def _fid_residual(fits: list[BudgetFit]) -> float:
    ss, dof = 0.0, 0
    for f in fits:
        ok = np.isfinite(f.fid) & (f.fid > 0)
        if f.fid_coef is not None and ok.sum() > 3:
            r = np.log(f.fid[ok]) - parabola_design(f.x[ok], f.centre, f.scale) @ f.fid_coef
            ss += float(np.sum(r**2))
            dof += int(ok.sum()) - 3
    return float(np.sqrt(ss / dof)) if dof else 0.0


@dataclass
class OptimaDraws:
    """Per resample and budget: ln N_opt, ln D_opt, L_opt, FID at the optimum, and whether the fit was valid."""

    x_opt: np.ndarray  # [R, B]
    lnD_opt: np.ndarray
    L_opt: np.ndarray
    fid_opt: np.ndarray
    valid: np.ndarray


def budget_optima(fits: list[BudgetFit], draws: Draws, *, allow_edge: bool = False, fid_method: str = "parabola",
                  method: str = "parabola") -> OptimaDraws:
    """Vertex of every budget in every resample; invalid where the resample has no interior minimum."""
    R, B = draws.n, len(fits)
    out = {k: np.full((R, B), np.nan) for k in ("x_opt", "lnD_opt", "L_opt", "fid_opt")}
    valid = np.zeros((R, B), dtype=bool)
    for b, f in enumerate(fits):
        if f.coef is None:
            continue
        x = f.x[draws.idx[b]]
        X = parabola_design(x, f.centre, f.scale)
        coef = solve_parabolas(X, draws.loss[b])
        xo, lo = vertex(coef, f.centre, f.scale)
        if method == "spline" and len(np.unique(f.x)) >= 5:
            xo, lo = _spline_optima(x, draws.loss[b], xo, lo)
        ok = np.isfinite(xo) & (coef[:, 2] > 0)
        if not allow_edge:
            ok &= (xo >= f.x.min()) & (xo <= f.x.max())
        valid[:, b] = ok
        out["x_opt"][:, b] = xo
        out["L_opt"][:, b] = lo
        out["lnD_opt"][:, b] = f.lnD_at(xo)
        out["fid_opt"][:, b] = _fid_draws(f, x, draws.ln_fid[b], xo, fid_method)
    return OptimaDraws(**out, valid=valid)


def _fid_draws(f: BudgetFit, x: np.ndarray, ln_fid: np.ndarray, xo: np.ndarray, fid_method: str) -> np.ndarray:
    ok = np.isfinite(ln_fid)
    if not ok.any():
        return np.full(len(xo), np.nan)
    if fid_method == "parabola" and f.fid_coef is not None:
        X = parabola_design(x, f.centre, f.scale) * ok[..., None]
        coef = solve_parabolas(X, np.where(ok, ln_fid, 0.0))
        u = (xo - f.centre) / f.scale
        return np.exp(coef[:, 0] + coef[:, 1] * u + coef[:, 2] * u**2)
    dist = np.where(ok, np.abs(x - xo[:, None]), np.inf)
    near = np.argmin(dist, axis=1)
    return np.exp(ln_fid[np.arange(len(xo)), near])


def _spline_optima(x: np.ndarray, y: np.ndarray, xo: np.ndarray, lo: np.ndarray):
    from scipy.interpolate import make_smoothing_spline

    xo, lo = xo.copy(), lo.copy()
    for r in range(len(x)):
        xs, inv = np.unique(x[r], return_inverse=True)
        if len(xs) < 5:
            continue  # too few distinct sizes for a spline: keep this resample's parabola vertex
        ys = np.bincount(inv, weights=y[r]) / np.bincount(inv)
        grid = np.linspace(xs[0], xs[-1], 513)
        vals = make_smoothing_spline(xs, ys)(grid)
        i = int(np.argmin(vals))
        xo[r], lo[r] = (grid[i], vals[i]) if 0 < i < len(grid) - 1 else (np.nan, np.nan)
    return xo, lo


def summarize(samples: np.ndarray) -> dict:
    """Median and 90 % / 95 % percentile intervals over the finite samples."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        return {"median": None, "ci90": [None, None], "ci95": [None, None], "n": 0}
    q = np.percentile(s, [50, 5, 95, 2.5, 97.5])
    return {"median": float(q[0]), "ci90": [float(q[1]), float(q[2])], "ci95": [float(q[3]), float(q[4])],
            "n": int(len(s))}
