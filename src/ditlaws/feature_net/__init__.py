"""The built-in feature network: a small CNN that reads each grid cell of a built-in image (shape, colour, size).

Trained once on the built-in procedural set (`python -m ditlaws.feature_net --out PATH`, or `ditlaws features`);
evaluation uses its penultimate layer as FID features (`builtin-cnn`) and its per-cell reading to score the
compositional accuracy of generated images.
"""

from ditlaws.feature_net.network import BuiltinFeatureNet, default_weights

__all__ = ["BuiltinFeatureNet", "default_weights"]
