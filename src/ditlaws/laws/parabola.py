"""The isoFLOP parabola, in one place: its design matrix, batched least squares, evaluation, vertex, spline vertex.

A budget's loss is modelled as c0 + c1·u + c2·u² with u = (ln N - centre) / scale (centred and scaled per budget
for conditioning). Every function works on one curve or on a batch of bootstrap resamples ([..., 3] coefficients),
so the fit, the bootstrap and the prediction API (for plotting the curves) share the same arithmetic.
"""

from __future__ import annotations

import numpy as np


def design(x, centre: float, scale: float) -> np.ndarray:
    """[..., n] ln N -> [..., n, 3] columns (1, u, u²)."""
    u = (np.asarray(x, dtype=float) - centre) / scale
    return np.stack([np.ones_like(u), u, u**2], axis=-1)


def solve(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares parabolas for a batch at once: X [..., n, 3], y [..., n] -> coefficients [..., 3].

    Singular systems (fewer than three distinct sizes in a resample) come back as NaN.
    """
    XtX = np.einsum("...ni,...nj->...ij", X, X)
    Xty = np.einsum("...ni,...n->...i", X, y)
    det = np.linalg.det(XtX)
    size = np.einsum("...ii->...", XtX) ** 3
    singular = ~(np.abs(det) > 1e-10 * size)
    XtX = np.where(singular[..., None, None], np.eye(3), XtX)
    coef = np.linalg.solve(XtX, Xty[..., None])[..., 0]
    coef[singular] = np.nan
    return coef


def evaluate(coef, x, centre: float, scale: float) -> np.ndarray:
    """The parabola(s) at ln N = x: coef [3] with x [n] -> [n]; coef [R, 3] with x [R] or [R, n] -> matching."""
    coef = np.asarray(coef, dtype=float)
    u = (np.asarray(x, dtype=float) - centre) / scale
    c0, c1, c2 = coef[..., 0], coef[..., 1], coef[..., 2]
    if coef.ndim > 1 and u.ndim == coef.ndim:
        c0, c1, c2 = c0[..., None], c1[..., None], c2[..., None]
    return c0 + c1 * u + c2 * u**2


def vertex(coef: np.ndarray, centre: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertex (ln N*, value*) of the parabola(s); works on batches [..., 3]."""
    coef = np.asarray(coef, dtype=float)
    c1, c2 = coef[..., 1], coef[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = -c1 / (2 * c2)
    return centre + scale * u, coef[..., 0] + c1 * u + c2 * u**2


def curvature(coef: np.ndarray, scale: float) -> np.ndarray:
    """d² value / d(ln N)²."""
    return 2 * np.asarray(coef, dtype=float)[..., 2] / scale**2


def spline_vertex(x: np.ndarray, y: np.ndarray, grid_points: int = 2001) -> tuple[float, float] | None:
    """Minimum (ln N*, value*) of a smoothing spline (GCV-chosen smoothing) through (x, y); (nan, nan) when the
    minimum lies at an edge of the sampled sizes; None when there are fewer than 5 distinct x (too few for a
    spline: callers keep the parabola vertex then)."""
    from scipy.interpolate import make_smoothing_spline

    xs, inv = np.unique(np.asarray(x, dtype=float), return_inverse=True)
    if len(xs) < 5:
        return None
    ys = np.bincount(inv, weights=np.asarray(y, dtype=float)) / np.bincount(inv)
    grid = np.linspace(xs[0], xs[-1], grid_points)
    vals = make_smoothing_spline(xs, ys)(grid)
    i = int(np.argmin(vals))
    if 0 < i < len(grid) - 1:
        return float(grid[i]), float(vals[i])
    return float("nan"), float("nan")
