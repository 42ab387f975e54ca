"""Synthetic runs from a known truth, for testing the fitters (and the README figure) against that truth.

* ``paper_truth()``: L = A/N^alpha + B/D^beta (E = 0) whose compute-optimal frontier is exactly the paper's laws:
  N_opt = 0.0009·C^0.5681 and L_opt = 2.3943·C^-0.0273 (then D_opt = C/(6·N_opt) = 185.2·C^0.4319; the paper's
  186.85 coefficient is not exactly consistent with C = 6ND).
* ``isoflop_table``: a fixed grid of depths at every budget (the paper's sweep).
* ``centred_isoflop_table``: per budget a log-spaced size grid around the (jittered) true optimum, as a sweep that
  follows its own fit would sample; from any truth with ``optimum(C)`` and ``loss(N, C)``.
* ``CurvedTruth``: isoFLOP curves whose optimal N and loss bend in log-log (a misspecified pure power law).
* ``nd_grid_table``: a Chinchilla-style N x D grid, every run its own compute (no isoFLOP groups).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ditlaws.laws.metrics import COLUMNS
from ditlaws.laws.parametric import ParametricLoss
from ditlaws.laws.table import RunTable, group_budgets

PAPER_BUDGETS = (1e17, 3e17, 6e17, 1e18, 3e18, 6e18)
PAPER_DEPTHS = tuple(range(2, 16))
PAPER_LAWS = {"N_opt": (0.0009, 0.5681), "D_opt": (186.8535, 0.4319), "L_opt": (2.3943, -0.0273),
              "FID": (2.2566e6, -0.234)}


def paper_size(depth: int) -> float:
    """Transformer-block parameters of the paper's preset: width 64·depth, ~12·width²·depth."""
    return 12.0 * (64.0 * depth) ** 2 * depth


def truth_for(k_N: float, a: float, k_L: float, c: float, E: float = 0.0) -> ParametricLoss:
    """The parametric loss (floor E) whose optimum follows N_opt = k_N·C^a and L_opt - E = k_L·C^c (c < 0)."""
    alpha, beta = -c / a, -c / (1 - a)  # a = beta/(alpha+beta) and c = -alpha·beta/(alpha+beta)
    k_D = 1.0 / (6.0 * k_N)
    # At the optimum alpha·A·N^-alpha = beta·B·D^-beta, so L_opt - E = A·N_opt^-alpha·(1 + alpha/beta).
    A = k_L * k_N**alpha / (1 + alpha / beta)
    B = alpha / beta * A * k_N**-alpha * k_D**beta
    return ParametricLoss(E=E, A=A, B=B, alpha=alpha, beta=beta)


def paper_truth() -> ParametricLoss:
    (k_N, a), (k_L, c) = PAPER_LAWS["N_opt"], PAPER_LAWS["L_opt"]
    return truth_for(k_N, a, k_L, c)


def make_table(N, D, loss, *, budget=None, study: str = "synthetic", metrics: dict | None = None,
               tolerance: float = 0.05) -> RunTable:
    """A grouped RunTable from arrays (``budget`` None: each run's budget is its own C = 6ND)."""
    N, D, loss = (np.asarray(v, dtype=float) for v in (N, D, loss))
    n = len(loss)
    cols = {k: np.full(n, np.nan) for k in COLUMNS}
    cols.update({k: np.asarray(v, dtype=float) for k, v in (metrics or {}).items()})
    table = RunTable(study=np.full(n, study), nominal=np.full(n, np.nan) if budget is None else
                     np.asarray(budget, dtype=float), N=N, D=D, C=6 * N * D, loss=loss,
                     run_id=np.array([f"r{i}" for i in range(n)]), where=np.array([f"run r{i}" for i in range(n)]),
                     metrics=cols, source=f"<synthetic {study}>", fingerprint="synthetic",
                     provenance={"kind": "synthetic"})
    return group_budgets(table, tolerance)


def _noise(rng: np.random.Generator, n: int, noise_rel: float, tail: float | None) -> np.ndarray:
    """Relative noise factors: Gaussian, or Student-t with ``tail`` degrees of freedom (heavy-tailed)."""
    z = rng.standard_normal(n) if tail is None else rng.standard_t(tail, n)
    return np.exp(noise_rel * z)


def isoflop_table(truth: ParametricLoss, rng: np.random.Generator, noise_rel: float = 0.0,
                  budgets=PAPER_BUDGETS, depths=PAPER_DEPTHS, fid_law: tuple[float, float] | None = None,
                  study: str = "synthetic") -> RunTable:
    """Every (budget, depth) run with D = C/(6N) and loss·(1 + noise_rel·z). Optional FID tied to the loss gap."""
    B, N = np.meshgrid(np.asarray(budgets, float), np.array([paper_size(d) for d in depths]), indexing="ij")
    B, N = B.ravel(), N.ravel()
    D = B / (6 * N)
    clean = truth(N, D)
    loss = clean * (1 + noise_rel * rng.standard_normal(len(clean)))
    metrics = {}
    if fid_law is not None:
        # FID tied to the loss gap above the optimum so its compute-optimal values follow k·C^d.
        k, d = fid_law
        _, _, L_opt = truth.optimal(B)
        metrics["fid"] = k * B**d * (clean / L_opt) ** 40 * (1 + noise_rel * rng.standard_normal(len(clean)))
    return make_table(N, D, loss, budget=B, study=study, metrics=metrics)


@dataclass(frozen=True)
class CurvedTruth:
    """IsoFLOP curves loss(N, C) = L*(C)·exp(kappa·u²), u = ln N - ln N*(C), whose optimum bends in log-log:
    ln N*(C) = ln k_N + a·x + gamma·x² and ln L*(C) = ln k_L + c·x + gamma_L·x², x = ln(C / C0)."""

    k_N: float = 0.0009
    a: float = 0.5681
    gamma: float = 0.02
    k_L: float = 2.3943
    c: float = -0.0273
    gamma_L: float = -0.002
    kappa: float = 0.02
    C0: float = 1e17

    def optimum(self, C) -> tuple[np.ndarray, np.ndarray]:
        lnC = np.log(np.asarray(C, dtype=float))
        x = lnC - np.log(self.C0)
        ln_n = np.log(self.k_N) + self.a * lnC + self.gamma * x**2
        ln_l = np.log(self.k_L) + self.c * lnC + self.gamma_L * x**2
        return np.exp(ln_n), np.exp(ln_l)

    def loss(self, N, C) -> np.ndarray:
        n_opt, l_opt = self.optimum(C)
        return l_opt * np.exp(self.kappa * (np.log(N) - np.log(n_opt)) ** 2)


@dataclass(frozen=True)
class ParametricTruth:
    """A ParametricLoss seen as isoFLOP curves (for ``centred_isoflop_table``)."""

    model: ParametricLoss

    def optimum(self, C) -> tuple[np.ndarray, np.ndarray]:
        n, _, loss = self.model.optimal(np.asarray(C, dtype=float))
        return n, loss

    def loss(self, N, C) -> np.ndarray:
        return self.model(N, np.asarray(C, dtype=float) / (6 * np.asarray(N, dtype=float)))


def centred_isoflop_table(truth, rng: np.random.Generator, budgets, *, n_sizes: int = 7, span: float = 16.0,
                          jitter: float = 0.3, noise_rel: float = 1e-3, tail: float | None = None,
                          study: str = "synthetic") -> RunTable:
    """Per budget ``n_sizes`` sizes log-spaced over a factor ``span`` around the true optimum shifted by
    exp(jitter·z) (the sweep's guess of where the optimum is), D = C/(6N), relative noise on the loss."""
    N, B = [], []
    for C in np.asarray(budgets, dtype=float):
        n_opt = float(truth.optimum(C)[0]) * np.exp(jitter * rng.standard_normal())
        N.append(n_opt * np.geomspace(span**-0.5, span**0.5, n_sizes))
        B.append(np.full(n_sizes, C))
    N, B = np.concatenate(N), np.concatenate(B)
    loss = truth.loss(N, B) * _noise(rng, len(N), noise_rel, tail)
    return make_table(N, B / (6 * N), loss, budget=B, study=study)


def nd_grid_table(truth: ParametricLoss, rng: np.random.Generator, Ns, Ds, *, noise_rel: float = 1e-2,
                  tail: float | None = None, study: str = "nd-grid") -> RunTable:
    """Every (N, D) pair once: each run its own compute, no isoFLOP groups."""
    N, D = (a.ravel() for a in np.meshgrid(np.asarray(Ns, float), np.asarray(Ds, float), indexing="ij"))
    loss = truth(N, D) * _noise(rng, len(N), noise_rel, tail)
    return make_table(N, D, loss, study=study)
