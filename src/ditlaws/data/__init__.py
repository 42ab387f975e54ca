"""Data: the built-in procedural text-to-image set, real image-text datasets, frozen encoders, and a parquet cache.

The names below load on first access (the encoders import diffusers, the loader datasets: seconds per process).
"""

import importlib

_LAZY_EXPORTS = {
    "BuiltinTextEncoder": "ditlaws.data.encoders",
    "IdentityImageEncoder": "ditlaws.data.encoders",
    "TransformersTextEncoder": "ditlaws.data.encoders",
    "VAEImageEncoder": "ditlaws.data.encoders",
    "build_image_encoder": "ditlaws.data.encoders",
    "build_text_encoder": "ditlaws.data.encoders",
    "build_dataset": "ditlaws.data.loader",
    "collate_samples": "ditlaws.data.loader",
    "make_dataloader": "ditlaws.data.loader",
}


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'ditlaws.data' has no attribute {name!r}")


__all__ = [*_LAZY_EXPORTS]
