"""Evaluation of flow models: validation loss, VLB, exact (ODE) likelihood, Fréchet distance, compositional
accuracy, CLIP score, sample grids.

Every estimator takes a model (callable like the DiT: ``model(x_t, t, text_states, text_mask=, pooled=) -> v``) and
an iterable of batches ``{"latent", "text_states", "text_mask", "pooled", "caption", "id"}``; random draws are
seeded per sample id, so results do not depend on the batch size.
"""

from pathlib import Path

from ditlaws.evaluation.frechet import FeatureStats, fid_from_features, frechet_distance
from ditlaws.evaluation.likelihood import ode_log_likelihood, ode_nll
from ditlaws.evaluation.validation_loss import validation_loss
from ditlaws.evaluation.vlb import vlb

# The `evaluate` metric module (evaluate itself has no FID): evaluate.load(str(FID_METRIC_PATH)), offline.
FID_METRIC_PATH = Path(__file__).parent / "metrics" / "fid"

__all__ = [
    "FID_METRIC_PATH",
    "FeatureStats",
    "fid_from_features",
    "frechet_distance",
    "ode_log_likelihood",
    "ode_nll",
    "validation_loss",
    "vlb",
]
