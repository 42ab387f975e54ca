"""Data: the built-in procedural text-to-image set, real image-text datasets, frozen encoders, and a parquet cache.

The names below load on first access (the encoders import diffusers, the loader datasets: seconds per process).
"""

from ditlaws.lazy import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _LAZY_EXPORTS)

__all__ = [*_LAZY_EXPORTS]
