"""A small two-study example fit (in-context and cross-attention, from known truths with the paper's exponents),
for the Space's tests and its README screenshot: real fits by ``ditlaws.laws``, seconds on a CPU.

    doc = example_fit()          # a fit.json document (schema 2) with doc["studies"] = [the second study]
    records = example_records()  # run records carrying a model_config, so the presets can be sized
"""

from __future__ import annotations

import functools

import numpy as np

from ditlaws.laws.document import fit_document
from ditlaws.laws.study import FitOptions
from ditlaws.laws.synthetic import PAPER_BUDGETS, PAPER_LAWS, isoflop_table, truth_for

BUDGETS = PAPER_BUDGETS  # 1e17 .. 6e18: enough budgets for nested backtests (extrapolation-error models)
DEPTHS = tuple(range(3, 15))
TOKENS_PER_SAMPLE = 256  # a 32x32 latent with patch 2
TARGETS = (1.5e21, 1e19)
# (k_N, a, k_L, c): N_opt = k_N·C^a, L_opt = k_L·C^c with the paper's in-context and cross-attention exponents;
# the cross-attention k_N puts its optima at the same sizes at 1e18 FLOPs (inside the depth grid)
STUDIES = {"in_context": (0.0009, 0.5681, 2.3943, -0.0273), "cross_attn": (0.0029, 0.54, 2.3943, -0.0385)}
GEOMETRY = {"sample_size": 32, "in_channels": 4, "patch_size": 2, "mlp_ratio": 4.0, "text_dim": 768, "text_len": 77}


def _study(name: str, seed: int) -> dict:
    truth = truth_for(*STUDIES[name])
    table = isoflop_table(truth, np.random.default_rng(seed), 3e-4, budgets=BUDGETS, depths=DEPTHS,
                          fid_law=PAPER_LAWS["FID"], study=name)
    table.tokens_per_sample = float(TOKENS_PER_SAMPLE)
    return fit_document(table, FitOptions(n_boot=100, parametric_boot=40, holdout=1), targets=TARGETS, seed=seed)


@functools.lru_cache(maxsize=4)
def _cached(studies: tuple[str, ...], seed: int) -> dict:
    docs = [_study(name, seed + i) for i, name in enumerate(studies)]
    return {**docs[0], "studies": docs[1:]}


def example_fit(studies: tuple[str, ...] = ("in_context", "cross_attn"), seed: int = 0) -> dict:
    """The fit.json document of the example (a fresh copy: callers may modify it)."""
    import copy

    return copy.deepcopy(_cached(tuple(studies), seed))


def example_records(doc: dict) -> list[dict]:
    """One run record per run of the document's main study, with the study's family and geometry."""
    runs = (doc.get("approach3") or {}).get("runs") or {}
    return [{"run_id": run_id, "study": doc["study"], "family": doc["study"],
             "model_config": {**GEOMETRY, "depth": DEPTHS[i % len(DEPTHS)]}} for i, run_id in
            enumerate(runs.get("run_id", []))]
