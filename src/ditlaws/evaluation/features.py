"""Feature extractors for the Fréchet distance, chosen by name.

- ``clip-vit-l-14``: open_clip ViT-L-14 with OpenAI weights, image embeddings (768-d). For real image sets; CLIP
  features rank generators more faithfully than Inception's ImageNet logits (Kynkäänniemi et al. 2023).
- ``builtin-cnn``: a small CNN that the project trains once on the built-in procedural set to classify each grid
  cell's shape, colour and size (``ditlaws.feature_net``; `python -m ditlaws.feature_net`); the feature is its
  penultimate layer (256-d). Offline, fast, and sensitive to exactly what the built-in captions describe.

Every extractor maps images float [B, 3, H, W] in [-1, 1] to float64 numpy features [B, dim], and has a ``name``
that is written into cached statistics and reports.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ditlaws.errors import UserError
from ditlaws.feature_net import BuiltinFeatureNet, default_weights

EXTRACTORS = ("clip-vit-l-14", "builtin-cnn")


class FeatureExtractor:
    """images [B, 3, H, W] in [-1, 1] -> float64 numpy [B, dim], batched, no grad."""

    def __init__(self, name: str, network: nn.Module, embed, device=None, batch_size: int = 64):
        self.name, self.network, self.embed, self.batch_size = name, network, embed, batch_size
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.network.to(self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        out = [self.embed(images[i : i + self.batch_size].to(self.device, torch.float32)).double().cpu()
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy()


def _clip_extractor(weights: str | None, device) -> FeatureExtractor:
    from ditlaws.evaluation.clip import CLIP_MODEL, load_clip

    try:
        clip = load_clip(CLIP_MODEL, weights, device)
    except UserError as err:
        raise UserError(f"FID features clip-vit-l-14: {err}; or use --fid-features builtin-cnn for the built-in "
                        "set") from None
    embed = lambda images: clip.model.encode_image(clip.preprocess(images))  # noqa: E731
    return FeatureExtractor("clip-vit-l-14", clip.model, embed, device=device, batch_size=32)


def get_feature_extractor(name: str, weights: str | None = None, device=None) -> FeatureExtractor:
    """The extractor called ``name`` (see EXTRACTORS); ``weights`` overrides where its weights come from."""
    if name == "clip-vit-l-14":
        return _clip_extractor(weights, device)
    if name == "builtin-cnn":
        net = BuiltinFeatureNet.load(weights or default_weights())
        return FeatureExtractor("builtin-cnn", net, net.features, device=device)
    raise UserError(f"FID feature extractor {name!r} is not known; valid: {', '.join(EXTRACTORS)}")
