"""The per-run metrics a fit reads besides the loss, and how each becomes a positive quantity for a power law.

A generation metric's compute-optimal law is fitted like FID's: the metric at each budget's optimum against C.
Where lower is better (FID) the metric itself is fitted, y = k·C^d with d < 0. Accuracy (in [0, 1], higher is
better) is fitted as its error 1 - accuracy (again y = k·C^d, d < 0) and reported back as accuracy. CLIP score
(higher is better, no reachable maximum) is fitted as it is, so its exponent is positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # table column, CSV column, and the run record's eval key
    law: str  # the law's name in fit.json
    label: str
    higher_is_better: bool
    one_minus: bool  # fitted as 1 - value
    valid: str  # "positive" (finite, > 0), "unit" (in [0, 1]) or "nonnegative" (finite, >= 0)

    @property
    def fitted(self) -> str:
        return f"1 - {self.key}" if self.one_minus else self.key

    @property
    def transform(self) -> str:
        return "one_minus" if self.one_minus else "identity"

    def to_fitted(self, value):
        return 1 - value if self.one_minus else value

    def problem(self, value: float) -> str | None:
        """Why a present value is invalid (None when it is fine); NaN means absent and is not checked here."""
        ok = {"positive": lambda v: math.isfinite(v) and v > 0, "unit": lambda v: 0.0 <= v <= 1.0,
              "nonnegative": lambda v: math.isfinite(v) and v >= 0}[self.valid](value)
        words = {"positive": "a finite number > 0", "unit": "in [0, 1]", "nonnegative": "a finite number >= 0"}
        return None if ok else f"'{self.key}' must be {words[self.valid]}, got {value!r}"


GENERATION_METRICS = (
    Metric("fid", "FID", "FID", False, False, "positive"),
    Metric("accuracy", "accuracy", "compositional accuracy", True, True, "unit"),
    Metric("accuracy_colour", "accuracy_colour", "colour accuracy", True, True, "unit"),
    Metric("accuracy_position", "accuracy_position", "position accuracy", True, True, "unit"),
    Metric("accuracy_shape", "accuracy_shape", "shape accuracy", True, True, "unit"),
    Metric("clip_score", "clip_score", "CLIP score", True, False, "nonnegative"),
)
OOD = Metric("ood_loss", "ood_loss", "out-of-domain loss", False, False, "positive")
BY_KEY = {m.key: m for m in GENERATION_METRICS}
BY_LAW = {m.law: m for m in GENERATION_METRICS}
# Optional run-table columns: the generation metrics and the out-of-domain loss.
COLUMNS = {m.key: m for m in (*GENERATION_METRICS, OOD)}
