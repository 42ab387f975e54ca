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
import torch.nn.functional as F
from torch import nn

from ditlaws.errors import UserError
from ditlaws.feature_net import BuiltinFeatureNet, default_weights

EXTRACTORS = ("clip-vit-l-14", "builtin-cnn")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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
    import open_clip

    pretrained = weights or "openai"
    try:
        model = open_clip.create_model("ViT-L-14", pretrained=pretrained, device="cpu")
    except Exception as err:  # download / cache / file errors all mean "no weights here"
        raise UserError(
            f"FID features clip-vit-l-14: cannot load the open_clip ViT-L-14 weights {pretrained!r} "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). Run once with network access so "
            "open_clip caches them, pass --fid-weights /path/to/open_clip_pytorch_model.bin, or use "
            "--fid-features builtin-cnn for the built-in set") from None
    model.eval().requires_grad_(False)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def embed(images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate((images + 1) / 2, size=(224, 224), mode="bicubic", antialias=True, align_corners=False)
        x = (x.clamp(0, 1) - mean.to(x.device)) / std.to(x.device)
        return model.encode_image(x)

    return FeatureExtractor("clip-vit-l-14", model, embed, device=device, batch_size=32)


def get_feature_extractor(name: str, weights: str | None = None, device=None) -> FeatureExtractor:
    """The extractor called ``name`` (see EXTRACTORS); ``weights`` overrides where its weights come from."""
    if name == "clip-vit-l-14":
        return _clip_extractor(weights, device)
    if name == "builtin-cnn":
        net = BuiltinFeatureNet.load(weights or default_weights())
        return FeatureExtractor("builtin-cnn", net, net.features, device=device)
    raise UserError(f"FID feature extractor {name!r} is not known; valid: {', '.join(EXTRACTORS)}")
