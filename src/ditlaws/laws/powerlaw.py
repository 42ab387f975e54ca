"""Power laws y = k·C^e fitted by least squares in log-log, singly or for a batch of bootstrap resamples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerLaw:
    coef: float
    exponent: float
    r2: float
    n: int

    def __call__(self, C):
        return self.coef * np.asarray(C, dtype=float) ** self.exponent

    def as_dict(self) -> dict:
        return {"coef": self.coef, "exponent": self.exponent, "r2": self.r2, "n_budgets": self.n}


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
