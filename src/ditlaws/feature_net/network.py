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


FORMAT = "cells-v2"  # written into the weights' metadata; older files (whole-image pooling) must be retrained


class BuiltinFeatureNet(nn.Module):
    """A reader of the built-in set's 3x3 grid: each cell is cropped and read by one shared small CNN, which gives the
    cell's embedding and logits for shape (+empty), colour (+empty) and size (+empty). Objects never leave their
    cell, so a crop holds one whole object or none, and the reader sees its outline at full detail (a network over
    the whole image that averages each cell's activations tells colours apart but not shapes).

    Args:
        resolution: the image side it is trained at (images of other sizes are resampled to 3·crop anyway).
        width: channels of the first convolution (the later ones have twice as many).
        feature_dim: size of each cell's embedding; the FID feature is the 9 embeddings concatenated.
        crop: side in pixels of the resampled cell that the CNN reads.
        n_shapes, n_colours, n_sizes: the attribute vocabularies of the built-in set.
    """

    grid = 3

    def __init__(self, resolution: int = 32, width: int = 16, feature_dim: int = 32, crop: int = 12,
                 n_shapes: int = 4, n_colours: int = 11, n_sizes: int = 3):
        super().__init__()
        self.config = dict(resolution=resolution, width=width, feature_dim=feature_dim, crop=crop,
                           n_shapes=n_shapes, n_colours=n_colours, n_sizes=n_sizes)
        w, half = width, (crop + 1) // 2
        self.cell = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(2 * w * half * half, feature_dim), nn.GELU(),
        )
        self.heads = nn.Linear(feature_dim, n_shapes + n_colours + n_sizes + 3)
        self.splits = (n_shapes + 1, n_colours + 1, n_sizes + 1)

    @property
    def n_cells(self) -> int:
        return self.grid * self.grid

    def cell_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """images float [B, 3, H, W] in [-1, 1] -> [B, 9, feature_dim] (cells in reading order, top left first)."""
        crop, b = self.config["crop"], images.shape[0]
        side = self.grid * crop
        if images.shape[-2:] != (side, side):
            images = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
        cells = images.unfold(2, crop, crop).unfold(3, crop, crop)  # [B, 3, rows, cols, crop, crop]
        cells = cells.permute(0, 2, 3, 1, 4, 5).reshape(b * self.n_cells, images.shape[1], crop, crop)
        return self.cell(cells).view(b, self.n_cells, -1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The FID feature: the cells' embeddings concatenated, [B, 9 · feature_dim]."""
        return self.cell_embeddings(images).flatten(1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Logits (shape, colour, size), each [B, cells, classes] (class 0 = empty cell)."""
        return tuple(self.heads(self.cell_embeddings(images)).split(self.splits, dim=-1))

    def save(self, path, training: dict | None = None) -> None:
        """safetensors with the architecture, the format tag and (when given) the training settings in its
        metadata, so `python -m ditlaws.feature_net` can tell a current network from one to retrain."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        metadata = {"config": json.dumps(self.config), "format": FORMAT}
        if training is not None:
            metadata["training"] = json.dumps(training, sort_keys=True)
        from ditlaws.jsonio import as_no_space, atomic_path

        try:
            with atomic_path(path) as tmp:
                save_file(self.state_dict(), str(tmp), metadata=metadata)
        except Exception as err:  # safetensors reports a full disk in its own words
            raise as_no_space(err, Path(path).parent) from err

    @staticmethod
    def training_of(path) -> dict | None:
        """The training settings recorded in a weights file (None: not recorded, or unreadable)."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "pt") as handle:
                recorded = (handle.metadata() or {}).get("training")
            return None if recorded is None else json.loads(recorded)
        except (SafetensorError, OSError, ValueError):
            return None

    @classmethod
    def load(cls, path) -> BuiltinFeatureNet:
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"builtin-cnn feature weights not found at {path}; train them once with "
                f"`python -m ditlaws.feature_net --out {path}` (or pass another --fid-weights)")
        from safetensors import SafetensorError, safe_open

        def damaged(err):
            return UserError(f"{path}: not a builtin-cnn feature network ({type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''})")

        try:
            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata() or {}
        except (SafetensorError, OSError) as err:
            raise damaged(err) from None
        if metadata.get("format") != FORMAT:
            raise UserError(f"{path}: a builtin-cnn network of an older ditlaws (it read whole images and could not "
                            f"tell shapes apart); retrain: python -m ditlaws.feature_net --out {path}")
        try:
            net = cls(**json.loads(metadata.get("config", "{}")))
            net.load_state_dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as err:
            raise damaged(err) from None
        return net.eval().requires_grad_(False)
