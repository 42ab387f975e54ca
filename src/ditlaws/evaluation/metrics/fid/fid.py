"""Fréchet distance between two sets of feature vectors, or of images through a named feature extractor.

Wraps ``ditlaws.evaluation.frechet`` (the library computes the same number).
"""

import datasets
import evaluate
import numpy as np
import torch

from ditlaws.evaluation.features import get_feature_extractor
from ditlaws.evaluation.frechet import FeatureStats

_DESCRIPTION = """
Fréchet distance ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) between Gaussian fits of two feature sets.
FID when the features come from an image network: pass images (float arrays [3, H, W] in [-1, 1]) with
`feature_extractor="builtin-cnn"` or `"clip-vit-l-14"`, or pass feature vectors directly.
"""

_CITATION = """
@inproceedings{heusel2017gans, title={GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium}, author={Heusel, Martin and Ramsauer, Hubert and Unterthiner, Thomas and Nessler, Bernhard and
Hochreiter, Sepp}, booktitle={NeurIPS}, year={2017}}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: generated samples: feature vectors (list of floats) or images (float [3, H, W] in [-1, 1]).
    references: real samples, same kind as predictions.
    feature_extractor: None for feature vectors; "builtin-cnn" or "clip-vit-l-14" for images.
    feature_weights: optional weights file for the extractor.
Returns:
    fid: the Fréchet distance (float); feature_extractor: its name; n_predictions, n_references.
Examples:
    >>> from ditlaws.evaluation import FID_METRIC_PATH
    >>> fid = evaluate.load(str(FID_METRIC_PATH))
    >>> fid.compute(predictions=[[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], references=[[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    {'fid': 0.0, 'feature_extractor': 'features', 'n_predictions': 3, 'n_references': 3}
"""


def _image_feature():
    return datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Fid(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64")),
                                   "references": datasets.Sequence(datasets.Value("float64"))}),
                datasets.Features({"predictions": _image_feature(), "references": _image_feature()}),
            ],
            reference_urls=["https://arxiv.org/abs/1706.08500"],
        )

    def _compute(self, predictions, references, feature_extractor=None, feature_weights=None):
        if feature_extractor is None:
            pred, ref, name = np.asarray(predictions, np.float64), np.asarray(references, np.float64), "features"
        else:
            extractor = get_feature_extractor(feature_extractor, feature_weights)
            pred = extractor(torch.as_tensor(np.stack(predictions), dtype=torch.float32))
            ref = extractor(torch.as_tensor(np.stack(references), dtype=torch.float32))
            name = extractor.name
        a = FeatureStats(extractor=name).update(pred)
        b = FeatureStats(extractor=name).update(ref)
        return {"fid": a.frechet_distance(b), "feature_extractor": name, "n_predictions": a.n, "n_references": b.n}
