"""ditlaws: scaling laws for diffusion transformers."""

__version__ = "0.1.0"
