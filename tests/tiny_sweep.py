"""The smallest sweep the sweep tests run: two 1-block DiTs on 16 px built-in images, a few steps each."""

import copy

TINY_SWEEP = {
    "budgets": [4e7, 8e7], "min_steps": 2, "keep_models": False,
    "sizes": [{"depth": 1, "width": 16, "heads": 1}, {"depth": 1, "width": 32, "heads": 2}],
    "base": {"model": {"family": "in_context", "patch_size": 4},
             "data": {"source": "builtin", "resolution": 16, "complexity": 1, "text_len": 8, "text_dim": 16,
                      "val_size": 8},
             "train": {"global_batch": 4, "lr": 1e-3, "mixed_precision": "no", "log_every": 1}},
    "eval": {"max_samples": 8, "loss_timesteps": 2, "batch_size": 8},
}


def tiny_sweep(study: str, train: dict | None = None, **keys) -> dict:
    """TINY_SWEEP (a fresh copy) for `study`, with top-level `keys` replaced and `train` merged into base.train."""
    raw = copy.deepcopy(TINY_SWEEP)
    raw["base"]["train"].update(train or {})
    return {**raw, "study": study, **keys}
