"""An extrapolation-error model learned from nested backtests inside the data.

Run noise (the bootstrap) says how well the data pin a law down where the data are; it says nothing about whether
the law's form holds further out. To learn that from the data themselves, the law is refitted on the smallest k
budgets only, for every k from the fewest it can be fitted on, and each fit predicts every larger budget. A pair
(origin k, budget j) gives the error e = ln(actual_j) - ln(predicted_j) at the log-distance
h = ln(C_j / C_k), C_k the largest budget of the origin's fit, and the noise variance v of that error (the
bootstrap variance of the prediction plus that of the actual value).

The model: e ~ (noise) + s·h·t_nu, an error that grows in proportion to how far the law is carried. Its scale is
the moment estimate s² = max(0, sum(e² - v)) / sum(h²) (each pair weighted by its distance), nu = number of pairs,
and an interval at distance h widens each side of the noise-only interval (in log space) in quadrature by
q·s·h, q the t_nu quantile (see ``ditlaws.laws.predict``). With no pair (too few budgets) there is no model and the
prediction says so; with s = 0 the backtests found no error beyond the noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Pair:
    origin_C: float  # largest compute in the origin's fit
    C: float  # the predicted budget
    error: float  # ln actual - ln predicted
    var_noise: float  # bootstrap variance of the prediction plus that of the actual, in log space

    @property
    def h(self) -> float:
        return float(np.log(self.C / self.origin_C))


@dataclass
class ErrorModel:
    status: str  # "ok" or "none"
    s: float | None = None
    dof: int = 0
    C_ref: float | None = None  # the largest budget of the law the model is applied to
    pairs: list[Pair] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict:
        out = {"kind": "log_distance", "status": self.status, "s": self.s, "dof": self.dof, "C_ref": self.C_ref,
               "n_pairs": len(self.pairs), "note": self.note,
               "pairs": [{"origin_C": p.origin_C, "C": p.C, "h": p.h, "error": p.error, "var_noise": p.var_noise}
                         for p in self.pairs]}
        if self.status == "ok":
            out["q90"] = float(stats.t.ppf(0.95, self.dof))
            out["q95"] = float(stats.t.ppf(0.975, self.dof))
        return out


def estimate(pairs: list[Pair], C_ref: float | None, *, needs: str = "") -> ErrorModel:
    """The error model from backtest pairs (``needs`` says what would have allowed one, for the note)."""
    pairs = [p for p in pairs if np.isfinite(p.error) and p.h > 0]
    if not pairs:
        return ErrorModel("none", C_ref=C_ref, note=needs or "no nested backtest was possible")
    e = np.array([p.error for p in pairs])
    v = np.array([p.var_noise if np.isfinite(p.var_noise) else 0.0 for p in pairs])
    h = np.array([p.h for p in pairs])
    s2 = max(0.0, float(np.sum(e**2 - v))) / float(np.sum(h**2))
    note = "" if s2 > 0 else "the nested backtests found no error beyond the run noise"
    return ErrorModel("ok", s=float(np.sqrt(s2)), dof=len(pairs), C_ref=C_ref, pairs=pairs, note=note)


def log_var(draws: np.ndarray) -> float:
    """Variance of ln(draws) over the finite positive draws (0 when fewer than two)."""
    d = np.asarray(draws, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ld = np.log(d[np.isfinite(d) & (d > 0)])
    return float(np.var(ld, ddof=1)) if len(ld) > 1 else 0.0
