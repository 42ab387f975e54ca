"""Small demo-like fits for the report, figure and Space tests: a few budgets x a few sizes, with FID, its
real-vs-real floor and accuracies in (0, 1), fitted by the real ``ditlaws.laws`` code in seconds."""

from __future__ import annotations

import numpy as np

from ditlaws.laws.document import fit_document
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import make_table, paper_truth

DEMO_BUDGETS = (1e17, 3e17, 1e18, 3e18, 1e19)
DEMO_SPAN = (1 / 4, 1 / 2, 1.0, 2.0, 4.0)  # sizes around each budget's true optimum
FID_EXCESS_EXPONENT = 0.5  # FID - floor ∝ C^-0.5 in ``demo_table(fid_excess=...)``


def demo_table(budgets=DEMO_BUDGETS, span=DEMO_SPAN, seed: int = 0, fid_floor: float | None = 1900.0,
               accuracy: bool = True, fid_excess: float | None = None):
    """IsoFLOP runs around the paper's truth (scaled down), FID falling towards ``fid_floor`` and accuracies that
    rise with compute (noisy, strictly inside (0, 1)). ``fid_excess``: FID is instead ``fid_floor`` plus
    fid_excess·(C/1e17)^-0.5 at each budget's optimum (``FID_EXCESS_EXPONENT``), rising away from it."""
    rng = np.random.default_rng(seed)
    truth = paper_truth()
    B, S = (a.ravel() for a in np.meshgrid(np.asarray(budgets, float), np.asarray(span, float), indexing="ij"))
    N = truth.optimal(B)[0] * S
    D = B / (6 * N)
    loss = truth(N, D) * np.exp(3e-4 * rng.standard_normal(len(B)))
    gap = loss / loss.min()
    metrics = {"fid": 2500.0 * (B / 1e17) ** -0.08 * gap**40 * np.exp(0.02 * rng.standard_normal(len(B)))}
    if fid_excess is not None:
        in_budget = loss / np.array([loss[B == b].min() for b in B])  # 1 at each budget's best size
        excess = fid_excess * (B / 1e17) ** -FID_EXCESS_EXPONENT * in_budget**400
        metrics["fid"] = (fid_floor + excess) * np.exp(0.01 * rng.standard_normal(len(B)))
    if fid_floor is not None:
        metrics["fid_floor"] = np.full(len(B), fid_floor)
    if accuracy:
        logit = -1.0 + 0.35 * np.log(B / 1e17) - 40 * np.log(gap) + 0.1 * rng.standard_normal(len(B))
        for key, shift in (("accuracy", 0.0), ("accuracy_colour", 1.0), ("accuracy_position", -0.5),
                           ("accuracy_shape", 0.3)):
            metrics[key] = 1 / (1 + np.exp(-(logit + shift)))
    table = make_table(N, D, loss, budget=B, study="demo", metrics=metrics)
    table.tokens_per_sample = 64.0
    return table


def demo_fit(targets=(1e20, 1e22), holdout: int = 2, **kwargs) -> dict:
    """The fit.json document of ``demo_table(**kwargs)``."""
    return fit_document(demo_table(**kwargs), FitOptions(n_boot=100, parametric_boot=30, holdout=holdout),
                        targets=list(targets))
