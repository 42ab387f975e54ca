"""ditlaws: scaling laws for diffusion transformers."""

import importlib

__version__ = "0.1.0"

# Loaded on first access (importing torch/diffusers is slow). diffusers pipelines load components by library
# name, so `ditlaws.<ClassName>` must resolve for every class a saved pipeline can contain.
_LAZY_EXPORTS = {
    "InContextDiT": "ditlaws.models",
    "CrossAttnDiT": "ditlaws.models",
    "build_model": "ditlaws.models",
    "DiTPipeline": "ditlaws.pipeline",
    "BuiltinTextEncoder": "ditlaws.data.encoders",
}


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name]), name)
    raise AttributeError(f"module 'ditlaws' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY_EXPORTS]
