"""The network: convolutions over the image, then per-cell logits for shape, colour and size (class 0 = empty)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ditlaws.errors import UserError
from ditlaws.paths import cache_root


def default_weights() -> Path:
    """Where the trained weights live unless a path is given: <cache>/features/builtin_cnn.safetensors."""
    return cache_root() / "features" / "builtin_cnn.safetensors"


class BuiltinFeatureNet(nn.Module):
    """Conv net over a 3x3 grid of cells: per-cell logits for shape (+empty), colour (+empty), size (+empty).

    Args:
        resolution: the image side it reads; other sizes are resized (bilinear, antialiased) to it.
        width: channels of the first convolution (the later ones have twice as many).
        feature_dim: size of the penultimate layer (the FID feature).
        n_shapes, n_colours, n_sizes, n_cells: the attribute vocabularies and the grid of the built-in set.
    """

    def __init__(self, resolution: int = 32, width: int = 32, feature_dim: int = 256,
                 n_shapes: int = 4, n_colours: int = 11, n_sizes: int = 3, n_cells: int = 9):
        super().__init__()
        self.config = dict(resolution=resolution, width=width, feature_dim=feature_dim, n_shapes=n_shapes,
                           n_colours=n_colours, n_sizes=n_sizes, n_cells=n_cells)
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GELU(),
            nn.AdaptiveAvgPool2d(3),
        )
        self.hidden = nn.Linear(2 * w * 9, feature_dim)
        self.heads = nn.Linear(feature_dim, n_cells * (n_shapes + n_colours + n_sizes + 3))
        self.splits = (n_shapes + 1, n_colours + 1, n_sizes + 1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, 3, H, W] in [-1, 1] -> the penultimate layer [B, feature_dim]."""
        size = self.config["resolution"]
        if images.shape[-1] != size or images.shape[-2] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return F.gelu(self.hidden(self.body(images).flatten(1)))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits (shape, colour, size), each [B, cells, classes] (class 0 = empty cell)."""
        logits = self.heads(self.features(images)).view(images.shape[0], self.config["n_cells"], -1)
        return tuple(logits.split(self.splits, dim=-1))

    def save(self, path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), str(path), metadata={"config": json.dumps(self.config)})

    @classmethod
    def load(cls, path) -> BuiltinFeatureNet:
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"builtin-cnn feature weights not found at {path}; train them once with "
                f"`python -m ditlaws.feature_net --out {path}` (or pass another --fid-weights)")
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as handle:
                config = json.loads((handle.metadata() or {}).get("config", "{}"))
            net = cls(**config)
            net.load_state_dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
            raise UserError(f"{path}: not a builtin-cnn feature network ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else ''})") from None
        return net.eval().requires_grad_(False)
