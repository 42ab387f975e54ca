"""ditlaws: scaling laws for diffusion transformers."""

from ditlaws.lazy import lazy_getattr

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

__getattr__ = lazy_getattr(__name__, _LAZY_EXPORTS)

__all__ = ["__version__", *_LAZY_EXPORTS]
