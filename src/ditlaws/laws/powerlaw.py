"""Laws of the compute-optimal points against C, for one set of points or a batch of bootstrap resamples at once.

* Power law y = k·C^e: ordinary least squares of ln y on ln C (``fit_power_law``; ``fit_lines`` for a batch).
* Loss with a floor L = E + A·C^(-alpha), E >= 0, A >= 0: least squares of ln L (``fit_floor``). For a given alpha
  the model is linear in (E, A), so (E, A) come from a relative least-squares solve and alpha from a grid plus a
  golden-section refinement of the log-space residual, all resamples at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOOR_ALPHA_RANGE = (1e-3, 3.0)
FLOOR_MIN_POINTS = 4  # three parameters: at least one spare point
FIXED_FLOOR_MIN_POINTS = 3  # the floor known beforehand: two parameters
FLAT = -1e30  # ln A when A = 0 (a flat law; finite so that it survives JSON and float32)


@dataclass(frozen=True)
class PowerLaw:
    coef: float
    exponent: float
    r2: float
    n: int

    def __call__(self, C):
        return self.coef * np.asarray(C, dtype=float) ** self.exponent

    @property
    def params(self) -> np.ndarray:
        return np.array([np.log(self.coef), self.exponent])


def fit_power_law(C, y) -> PowerLaw:
    """Ordinary least squares of ln y on ln C."""
    lx, ly = np.log(np.asarray(C, dtype=float)), np.log(np.asarray(y, dtype=float))
    intercept, slope = fit_lines(lx, ly[None, :], np.ones((1, len(lx)), dtype=bool))
    pred = intercept[0] + slope[0] * lx
    ss_tot = np.sum((ly - ly.mean()) ** 2)
    r2 = 1.0 - np.sum((ly - pred) ** 2) / ss_tot if ss_tot > 0 else float("nan")
    return PowerLaw(coef=float(np.exp(intercept[0])), exponent=float(slope[0]), r2=float(r2), n=len(lx))


def fit_lines(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masked OLS lines for a batch: x [B], y [R, B], mask [R, B] -> (intercept [R], slope [R]).

    Rows with fewer than two distinct masked x values give NaN.
    """
    w = (mask & np.isfinite(y)).astype(float)
    y = np.where(w > 0, y, 0.0)
    n = w.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx = (w * x).sum(axis=1) / n
        my = (w * y).sum(axis=1) / n
        dx = x[None, :] - mx[:, None]
        sxx = (w * dx**2).sum(axis=1)
        slope = (w * dx * (y - my[:, None])).sum(axis=1) / sxx
        bad = (n < 2) | ~(sxx > 1e-12)
    slope = np.where(bad, np.nan, slope)
    return np.where(bad, np.nan, my - slope * mx), slope


def power_draws(C: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Batched power laws: C [B], y [R, B] (NaN = missing) -> params [R, 2] = (ln k, e)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.log(y)
    intercept, slope = fit_lines(np.log(C), ly, np.isfinite(ly))
    return np.stack([intercept, slope], axis=1)


def _floor_and_scale(q: np.ndarray, z: np.ndarray, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The weighted least-squares (E, A) >= 0 of L ≈ E + A·z, row by row (weights q)."""
    s1, sz, szz = q.sum(1), (q * z).sum(1), (q * z * z).sum(1)
    sl, szl = (q * L).sum(1), (q * z * L).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        det = s1 * szz - sz**2
        E = (szz * sl - sz * szl) / det
        A = (s1 * szl - sz * sl) / det
        e_zero, a_only = E < 0, szl / szz  # E >= 0: refit A alone
        a_zero, e_only = A < 0, sl / s1  # A >= 0: refit E alone
    E, A = np.where(e_zero, 0.0, E), np.where(e_zero, a_only, A)
    return np.where(a_zero & ~e_zero, e_only, E), np.where(a_zero & ~e_zero, 0.0, A)


def _floor_solve(lnC: np.ndarray, L: np.ndarray, w: np.ndarray, alpha: np.ndarray, E_fixed: float | None = None):
    """For each row's alpha: (E, A) minimising sum w·((L - E - A·z) / L)², z = (C/C_ref)^-alpha, with E, A >= 0
    (A alone, >= 0, where E is fixed).

    lnC is centred (ln C - ln C_ref); L, w [R, B]; alpha [R] -> E, A, log-space SSE, each [R]."""
    z = np.exp(-alpha[:, None] * lnC[None, :])
    q = w / L**2
    if E_fixed is None:
        E, A = _floor_and_scale(q, z, L)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            A = np.maximum((q * z * (L - E_fixed)).sum(1) / (q * z * z).sum(1), 0.0)
        E = np.full_like(A, E_fixed)
    with np.errstate(divide="ignore", invalid="ignore"):
        resid = np.log(L) - np.log(E[:, None] + A[:, None] * z)
    sse = np.where(w > 0, w * resid**2, 0.0).sum(1)
    return E, A, np.where(np.isfinite(sse), sse, np.inf)


def floor_min_points(E: float | None = None) -> int:
    """Fewest points of a floor law: one more than its free parameters."""
    return FLOOR_MIN_POINTS if E is None else FIXED_FLOOR_MIN_POINTS


def fit_floor(C: np.ndarray, L: np.ndarray, n_grid: int = 96, n_golden: int = 40,
              E: float | None = None) -> np.ndarray:
    """Batched L = E + A·C^-alpha: C [B], L [R, B] (NaN = missing) -> params [R, 3] = (E, ln A, alpha).

    ``E``: a floor known beforehand (FID's real-vs-real floor), not fitted. Rows with fewer points than
    ``floor_min_points(E)`` give NaN."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    lnC_raw = np.log(np.asarray(C, dtype=float))
    ref = float(np.mean(lnC_raw))
    lnC = lnC_raw - ref
    w = np.isfinite(L) & (L > 0)
    Lf = np.where(w, L, 1.0)
    wf = w.astype(float)
    R = L.shape[0]
    grid = np.geomspace(*FLOOR_ALPHA_RANGE, n_grid)
    sse = np.stack([_floor_solve(lnC, Lf, wf, np.full(R, a), E)[2] for a in grid], axis=1)
    best = np.argmin(sse, axis=1)
    lo = np.log(grid[np.maximum(best - 1, 0)])
    hi = np.log(grid[np.minimum(best + 1, n_grid - 1)])
    # Golden-section search in ln alpha inside the bracket around the best grid point.
    g = (np.sqrt(5) - 1) / 2
    a, b = lo, hi
    for _ in range(n_golden):
        c, d = b - g * (b - a), a + g * (b - a)
        left = _floor_solve(lnC, Lf, wf, np.exp(c), E)[2] < _floor_solve(lnC, Lf, wf, np.exp(d), E)[2]
        a, b = np.where(left, a, c), np.where(left, d, b)
    alpha = np.exp((a + b) / 2)
    E_fit, A, _ = _floor_solve(lnC, Lf, wf, alpha, E)
    with np.errstate(divide="ignore"):  # back to raw C: A·(C/C_ref)^-alpha = (A·C_ref^alpha)·C^-alpha
        ln_a = np.where(A > 0, np.log(np.where(A > 0, A, 1.0)) + alpha * ref, FLAT)
    out = np.stack([E_fit, ln_a, alpha], axis=1)
    out[w.sum(1) < floor_min_points(E)] = np.nan
    return out


def floor_flags(params: np.ndarray) -> list[str]:
    """Where a floor-law fit sits on a constraint: E = 0 (no floor found), A = 0 (flat), alpha at its range ends."""
    E, ln_a, alpha = params
    flags = []
    if E == 0:
        flags.append("E_at_bound_0")
    if ln_a <= FLAT / 2:
        flags.append("A_at_bound_0")
    lo, hi = FLOOR_ALPHA_RANGE
    if alpha <= lo * 1.0001 or alpha >= hi * 0.9999:
        flags.append("alpha_at_bound")
    return flags
