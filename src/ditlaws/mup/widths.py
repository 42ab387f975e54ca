"""What the μP tools share: a comma-separated width list, the heads every width can use, a run config at a width."""

from __future__ import annotations

import copy

from ditlaws.config import RunConfig
from ditlaws.errors import UserError

PARAMETRIZATIONS = ("sp", "mup")


def parse_widths(text: str, option: str = "--widths") -> list[int]:
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise UserError(f"{option}: a comma-separated list of widths, e.g. 16,32,64; got {text!r}") from None
    if len(widths) < 2 or len(set(widths)) < len(widths) or min(widths) < 4 or any(w % 4 for w in widths):
        raise UserError(f"{option}: at least two different widths, each a multiple of 4; got {text!r}")
    return sorted(widths)


def resolve_heads(cfg: RunConfig, widths: list[int], heads: int | None) -> int:
    """The heads of every width: `heads`, else the config's, which must divide every width (fixed head count, so
    the head size grows with width: the case where μP's attention scale matters)."""
    chosen = heads if heads is not None else cfg.model.resolved_heads
    bad = [w for w in widths if w % chosen]
    if bad:
        source = "--heads" if heads is not None else "model.heads of the config"
        raise UserError(f"{source} ({chosen}) must divide every width; it does not divide {bad} (pass --heads)")
    return chosen


def at_width(cfg: RunConfig, width: int, heads: int, parametrization: str, base_width: int) -> RunConfig:
    """A copy of `cfg` whose model has `width`, `heads` and the parametrization (μP based at `base_width`)."""
    out = copy.deepcopy(cfg)
    out.model.width, out.model.heads = width, heads
    out.model.parametrization = parametrization
    out.model.base_width = base_width if parametrization == "mup" else None
    out.model.base_heads = None
    return out.validate()
