"""ditlaws: scaling laws for diffusion transformers."""

__version__ = "0.1.0"
from ditlaws.data.encoders import BuiltinTextEncoder  # noqa: E402,F401  (diffusers pipelines load it by library name)
