"""Fréchet distance between feature distributions (FID when the features are Inception's; here pluggable).

    FD = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)

The cross term uses the symmetric form: S1^1/2 S2 S1^1/2 is symmetric positive semi-definite, so its square root's
trace is the sum of the square roots of its (clipped non-negative) eigenvalues; this has the same value as
tr(sqrtm(S1 S2)) without sqrtm's complex round-off on a non-symmetric product.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ditlaws.errors import UserError


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigvals, eigvecs = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0, None))) @ eigvecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise UserError(f"feature statistics differ in shape: {mu1.shape} vs {mu2.shape} (same feature extractor?)")
    root1 = _psd_sqrt(sigma1)
    cross = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    tr_covmean = np.sqrt(np.clip(cross, 0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    return max(value, 0.0)  # >= 0 exactly; round-off on (near) identical statistics can dip below


class FeatureStats:
    """Running mean and covariance of feature vectors, float64, mergeable (Chan et al.'s pairwise update)."""

    def __init__(self, dim: int | None = None, extractor: str = ""):
        self.n = 0
        self.extractor = extractor
        self.floor: dict | None = None  # a reference's real-vs-real FID (``evaluation.reference``), saved with it
        self.mean = None if dim is None else np.zeros(dim)
        self.scatter = None if dim is None else np.zeros((dim, dim))  # sum of outer products of deviations

    def update(self, features) -> FeatureStats:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2:
            raise UserError(f"features must be a 2-D array [n, dim], got shape {x.shape}")
        if len(x) == 0:
            return self
        batch = FeatureStats(extractor=self.extractor)
        batch.n, batch.mean = len(x), x.mean(0)
        centered = x - batch.mean
        batch.scatter = centered.T @ centered
        return self.merge(batch)

    def merge(self, other: FeatureStats) -> FeatureStats:
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.scatter = other.n, other.mean.copy(), other.scatter.copy()
            return self
        if self.mean.shape != other.mean.shape:
            raise UserError(f"cannot merge feature statistics of dims {self.mean.shape} and {other.mean.shape}")
        n = self.n + other.n
        delta = other.mean - self.mean
        self.scatter = self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        self.mean = self.mean + delta * (other.n / n)
        self.n = n
        return self

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise UserError(f"feature statistics need at least 2 samples, have {self.n}")
        return self.scatter / (self.n - 1)

    def frechet_distance(self, other: FeatureStats) -> float:
        if self.extractor and other.extractor and self.extractor != other.extractor:
            raise UserError(f"feature statistics come from different extractors: {self.extractor!r} vs "
                            f"{other.extractor!r}")
        return frechet_distance(self.mean, self.cov, other.mean, other.cov)

    def save(self, path) -> None:
        """npz with mu, sigma, n and the extractor name, and the floor when measured (no pickles)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {}
        if self.floor is not None:
            fid = self.floor.get("fid")
            extra = {"floor_fid": np.float64(np.nan if fid is None else fid),
                     "floor_n": np.int64(self.floor.get("n") or 0),
                     "floor_note": np.str_(self.floor.get("against") or self.floor.get("note") or "")}
        from ditlaws.jsonio import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, mu=self.mean, sigma=self.cov, n=np.int64(self.n), extractor=np.str_(self.extractor), **extra)

    @classmethod
    def load(cls, path) -> FeatureStats:
        try:
            with np.load(path, allow_pickle=False) as data:
                stats = cls(extractor=str(data["extractor"]))
                stats.n = int(data["n"])
                stats.mean = data["mu"].astype(np.float64)
                stats.scatter = data["sigma"].astype(np.float64) * (stats.n - 1)
                if "floor_fid" in data.files:
                    fid, note = float(data["floor_fid"]), str(data["floor_note"])
                    stats.floor = ({"fid": fid, "n": int(data["floor_n"]), "against": note} if np.isfinite(fid)
                                   else {"fid": None, "n": int(data["floor_n"]), "note": note})
        except (OSError, KeyError, ValueError) as err:
            raise UserError(f"{path}: not a feature-statistics file (npz with mu, sigma, n, extractor): {err}") from err
        return stats


def fid_from_features(features_a, features_b, extractor: str = "") -> float:
    """Fréchet distance between two sets of feature vectors ([n, dim] arrays or lists of arrays)."""
    a = FeatureStats(extractor=extractor).update(np.concatenate([np.atleast_2d(f) for f in features_a]))
    b = FeatureStats(extractor=extractor).update(np.concatenate([np.atleast_2d(f) for f in features_b]))
    return a.frechet_distance(b)
