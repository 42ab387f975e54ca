"""Synthetic isoFLOP grids from a known L(N, D), for testing the fitters against a truth.

``paper_truth()`` is L = A/N^alpha + B/D^beta (E = 0) whose compute-optimal frontier is exactly the paper's laws:
N_opt = 0.0009·C^0.5681 and L_opt = 2.3943·C^-0.0273 (then D_opt = C/(6·N_opt) = 185.2·C^0.4319; the paper's
186.85 coefficient is not exactly consistent with C = 6ND).
"""

from __future__ import annotations

import numpy as np

from ditlaws.laws.parametric import ParametricLoss
from ditlaws.laws.table import RunTable

PAPER_BUDGETS = (1e17, 3e17, 6e17, 1e18, 3e18, 6e18)
PAPER_DEPTHS = tuple(range(2, 16))
PAPER_LAWS = {"N_opt": (0.0009, 0.5681), "D_opt": (186.8535, 0.4319), "L_opt": (2.3943, -0.0273),
              "FID": (2.2566e6, -0.234)}


def paper_size(depth: int) -> float:
    """Transformer-block parameters of the paper's preset: width 64·depth, ~12·width²·depth."""
    return 12.0 * (64.0 * depth) ** 2 * depth


def truth_for(k_N: float, a: float, k_L: float, c: float) -> ParametricLoss:
    """The E = 0 parametric loss whose optimum follows N_opt = k_N·C^a and L_opt = k_L·C^c (c < 0)."""
    alpha, beta = -c / a, -c / (1 - a)  # a = beta/(alpha+beta) and c = -alpha·beta/(alpha+beta)
    k_D = 1.0 / (6.0 * k_N)
    # At the optimum alpha·A·N^-alpha = beta·B·D^-beta, so L_opt = A·N_opt^-alpha·(1 + alpha/beta).
    A = k_L * k_N**alpha / (1 + alpha / beta)
    B = alpha / beta * A * k_N**-alpha * k_D**beta
    return ParametricLoss(E=0.0, A=A, B=B, alpha=alpha, beta=beta)


def paper_truth() -> ParametricLoss:
    (k_N, a), (k_L, c) = PAPER_LAWS["N_opt"], PAPER_LAWS["L_opt"]
    return truth_for(k_N, a, k_L, c)


def isoflop_table(truth: ParametricLoss, rng: np.random.Generator, noise_rel: float = 0.0,
                  budgets=PAPER_BUDGETS, depths=PAPER_DEPTHS, fid_law: tuple[float, float] | None = None,
                  study: str = "synthetic") -> RunTable:
    """Every (budget, depth) run with D = C/(6N) and loss·(1 + noise_rel·z). Optional FID = k·L^p-shaped."""
    B, N = np.meshgrid(np.asarray(budgets, float), np.array([paper_size(d) for d in depths]), indexing="ij")
    B, N = B.ravel(), N.ravel()
    D = B / (6 * N)
    clean = truth(N, D)
    loss = clean * (1 + noise_rel * rng.standard_normal(len(clean)))
    fid = np.full(len(loss), np.nan)
    if fid_law is not None:
        # FID tied to the loss gap above the optimum so its compute-optimal values follow k·C^d.
        k, d = fid_law
        _, _, L_opt = truth.optimal(B)
        fid = k * B**d * (clean / L_opt) ** 40 * (1 + noise_rel * rng.standard_normal(len(clean)))
    n = len(loss)
    return RunTable(study=np.full(n, study), budget=B, N=N, D=D, C=6 * N * D, loss=loss, fid=fid,
                    ood_loss=np.full(n, np.nan), run_id=np.array([f"r{i}" for i in range(n)]),
                    source=f"<synthetic {study}>")
