"""The two DiT families, their size presets and closed-form accounting."""

from ditlaws.errors import UserError
from ditlaws.models.cross_attn import CrossAttnDiT
from ditlaws.models.in_context import InContextDiT
from ditlaws.models.presets import PAPER_DEPTHS, PRESETS, preset

MODEL_FAMILIES = {"in_context": InContextDiT, "cross_attn": CrossAttnDiT}


def build_model(family: str, **config):
    """Build a freshly initialised DiT of `family` ("in_context" | "cross_attn") from config keyword arguments."""
    if family not in MODEL_FAMILIES:
        raise UserError(f"model family {family!r} is unknown; valid: {', '.join(MODEL_FAMILIES)}")
    try:
        return MODEL_FAMILIES[family](**config)
    except TypeError as err:  # an unknown keyword
        raise UserError(f"bad model config for {family!r}: {err}") from None


__all__ = ["MODEL_FAMILIES", "PAPER_DEPTHS", "PRESETS", "CrossAttnDiT", "InContextDiT", "build_model", "preset"]
