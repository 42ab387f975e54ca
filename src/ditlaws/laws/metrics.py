"""The per-run metrics a fit reads besides the loss, and how each becomes a positive quantity for a power law.

A generation metric's compute-optimal law is fitted like FID's: the metric at each budget's optimum against C.
Where lower is better (FID) the metric itself is fitted, y = k·C^d with d < 0. Accuracy (in (0, 1), higher is
better) is fitted on its odds, acc / (1 - acc) = k·C^d, a straight line in logit(acc) against ln C, and reported
back as accuracy = odds / (1 + odds): every value and interval lies inside (0, 1), forwards and backwards in C
(a law on 1 - accuracy leaves [0, 1] as soon as its error grows past 1). CLIP score (higher is better, no reachable
maximum) is fitted as it is, so its exponent is positive.

``fid_floor`` is no law: the real-vs-real FID of the run's feature extractor and sample count (two disjoint sets of
real images, measured with the reference statistics), which no generator can be expected to beat; the fit keeps the
smallest one of its runs and clips FID predictions below it (``ditlaws.laws.predict``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TRANSFORMS = ("identity", "odds")  # fit.json also reads "one_minus" (accuracy laws of earlier fits)


@dataclass(frozen=True)
class Metric:
    key: str  # table column, CSV column, and the run record's eval key
    law: str  # the law's name in fit.json
    label: str
    higher_is_better: bool
    transform: str  # "identity", or "odds": fitted as value / (1 - value)
    valid: str  # "positive" (finite, > 0), "unit" (in [0, 1]) or "nonnegative" (finite, >= 0)

    @property
    def fitted(self) -> str:
        return f"{self.key} / (1 - {self.key})" if self.transform == "odds" else self.key

    @property
    def bounded(self) -> bool:
        """Values live in (0, 1): figures draw them on a linear [0, 1] axis."""
        return self.transform == "odds"

    def to_fitted(self, value):
        """The metric -> the positive quantity its law is fitted on (odds: 0 -> 0, 1 -> inf)."""
        if self.transform != "odds":
            return value
        v = np.asarray(value, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(v < 1, v / np.where(v < 1, 1 - v, 1.0), np.inf)
        return float(out) if out.ndim == 0 else out

    def from_fitted(self, y):
        """The inverse of ``to_fitted`` (odds -> accuracy, monotone increasing)."""
        return from_fitted(self.transform, y)

    def problem(self, value: float) -> str | None:
        """Why a present value is invalid (None when it is fine); NaN means absent and is not checked here."""
        ok = {"positive": lambda v: math.isfinite(v) and v > 0, "unit": lambda v: 0.0 <= v <= 1.0,
              "nonnegative": lambda v: math.isfinite(v) and v >= 0}[self.valid](value)
        words = {"positive": "a finite number > 0", "unit": "in [0, 1]", "nonnegative": "a finite number >= 0"}
        return None if ok else f"'{self.key}' must be {words[self.valid]}, got {value!r}"


def from_fitted(transform: str, y):
    """A fitted quantity back in its metric's units: odds -> odds / (1 + odds); one_minus -> 1 - y (which flips an
    interval's ends: callers that map intervals use ``interval_from_fitted``)."""
    if transform == "odds":
        v = np.asarray(y, dtype=float)
        with np.errstate(invalid="ignore", over="ignore"):
            out = np.where(np.isinf(v) & (v > 0), 1.0, v / (1 + v))
        return float(out) if out.ndim == 0 else out
    if transform == "one_minus":
        return 1 - np.asarray(y, dtype=float) if not isinstance(y, (int, float)) else 1 - y
    return y


GENERATION_METRICS = (
    Metric("fid", "FID", "FID", False, "identity", "positive"),
    Metric("accuracy", "accuracy", "compositional accuracy", True, "odds", "unit"),
    Metric("accuracy_colour", "accuracy_colour", "colour accuracy", True, "odds", "unit"),
    Metric("accuracy_position", "accuracy_position", "position accuracy", True, "odds", "unit"),
    Metric("accuracy_shape", "accuracy_shape", "shape accuracy", True, "odds", "unit"),
    Metric("clip_score", "clip_score", "CLIP score", True, "identity", "nonnegative"),
)
OOD = Metric("ood_loss", "ood_loss", "out-of-domain loss", False, "identity", "positive")
FID_FLOOR = Metric("fid_floor", "fid_floor", "real-vs-real FID", False, "identity", "nonnegative")
BY_KEY = {m.key: m for m in GENERATION_METRICS}
BY_LAW = {m.law: m for m in GENERATION_METRICS}
# Optional run-table columns: the generation metrics, the out-of-domain loss and FID's real-vs-real floor.
COLUMNS = {m.key: m for m in (*GENERATION_METRICS, OOD, FID_FLOOR)}


def fid_floor_block(table) -> dict | None:
    """FID's real-vs-real floor over the runs that measured one (``eval.fid_floor``, or a CSV's fid_floor column):
    the smallest, so a prediction is clipped only where it lies below every run's floor."""
    values = np.asarray(table.metrics.get("fid_floor", []), dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if not len(values):
        return None
    return {"value": float(values.min()), "max": float(values.max()), "n_runs": int(len(values)),
            "what": "real-vs-real FID: two disjoint sets of real images of the evaluation split, the runs' own "
                    "feature extractor and sample count (measured with the reference statistics)"}
