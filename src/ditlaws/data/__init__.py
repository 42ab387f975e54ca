"""Data: the built-in procedural text-to-image set, real image-text datasets, frozen encoders, and a parquet cache."""

from ditlaws.data.encoders import (
    BuiltinTextEncoder,
    IdentityImageEncoder,
    TransformersTextEncoder,
    VAEImageEncoder,
    build_image_encoder,
    build_text_encoder,
)
from ditlaws.data.loader import build_dataset, collate_samples, make_dataloader

__all__ = [
    "BuiltinTextEncoder",
    "IdentityImageEncoder",
    "TransformersTextEncoder",
    "VAEImageEncoder",
    "build_dataset",
    "build_image_encoder",
    "build_text_encoder",
    "collate_samples",
    "make_dataloader",
]
