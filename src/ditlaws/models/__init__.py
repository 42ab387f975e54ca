"""The two DiT families, their size presets and closed-form accounting.

The model classes load on first access, so `ditlaws.models.presets` and `ditlaws.models.flops` import without torch
(the Space and the sweep planner use them).
"""

import importlib

from ditlaws.errors import UserError
from ditlaws.models.presets import PAPER_DEPTHS, PRESETS, preset

FAMILY_CLASSES = {"in_context": ("ditlaws.models.in_context", "InContextDiT"),
                  "cross_attn": ("ditlaws.models.cross_attn", "CrossAttnDiT")}
_CLASS_MODULES = {name: module for module, name in FAMILY_CLASSES.values()}


def family_class(family: str):
    """The model class of `family` ("in_context" | "cross_attn")."""
    if family not in FAMILY_CLASSES:
        raise UserError(f"model family {family!r} is unknown; valid: {', '.join(FAMILY_CLASSES)}")
    module, name = FAMILY_CLASSES[family]
    return getattr(importlib.import_module(module), name)


def build_model(family: str, **config):
    """Build a freshly initialised DiT of `family` ("in_context" | "cross_attn") from config keyword arguments."""
    cls = family_class(family)
    try:
        return cls(**config)
    except TypeError as err:  # an unknown keyword
        raise UserError(f"bad model config for {family!r}: {err}") from None


def __getattr__(name: str):
    if name in _CLASS_MODULES:
        return getattr(importlib.import_module(_CLASS_MODULES[name]), name)
    if name == "MODEL_FAMILIES":
        return {family: family_class(family) for family in FAMILY_CLASSES}
    raise AttributeError(f"module 'ditlaws.models' has no attribute {name!r}")


__all__ = ["MODEL_FAMILIES", "PAPER_DEPTHS", "PRESETS", "CrossAttnDiT", "InContextDiT", "build_model",
           "family_class", "preset"]
