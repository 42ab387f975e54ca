"""The size presets a study could train (width = 64·depth, heads = depth: ``ditlaws.config.preset_size``), their
parameter counts in the study's own geometry, and the one nearest a compute-optimal N.

The parameter count is the library's closed form (``ditlaws.models.flops.parameter_counts``), which needs torch
today (see /work/coord/space-needs.md); ``ditlaws space deploy`` therefore computes the table once and ships it as
``presets.json`` next to app.py, so the deployed Space never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ditlaws.config import preset_size
from ditlaws.errors import UserError

GEOMETRY_KEYS = ("sample_size", "in_channels", "patch_size", "mlp_ratio", "text_dim", "text_len")
DEPTHS = tuple(range(1, 49))


def geometry(records: Iterable[dict]) -> dict | None:
    """The family and input geometry shared by a study's run records (their ``model_config``), or None when the
    records are missing, lack a model_config, or disagree (a preset's size would then be ambiguous)."""
    seen = set()
    for rec in records:
        cfg = rec.get("model_config") or {}
        if not all(k in cfg for k in GEOMETRY_KEYS) or not rec.get("family"):
            return None
        seen.add((rec["family"], *(cfg[k] for k in GEOMETRY_KEYS)))
    if len(seen) != 1:
        return None
    family, *values = seen.pop()
    return {"family": family, **dict(zip(GEOMETRY_KEYS, values))}


def preset_table(geom: dict, depths: Iterable[int] = DEPTHS) -> list[dict]:
    """Every preset depth with its width, heads and parameter counts (total = the fit's N) in ``geom``."""
    from ditlaws.models.flops import parameter_counts  # imports torch (space-needs.md, item 1)
    from ditlaws.models.presets import resolve_dims

    rows = []
    for depth in depths:
        size = preset_size(depth)
        try:
            dims = resolve_dims(geom["sample_size"], geom["in_channels"], geom["patch_size"], depth, size["width"],
                                size["heads"], geom["mlp_ratio"], geom["text_dim"], geom["text_len"])
        except UserError:
            continue  # e.g. a width the geometry cannot take
        counts = parameter_counts(geom["family"], dims)
        rows.append({**size, "N": counts["total"], "N_non_embedding": counts["non_embedding"]})
    return rows


def presets_from_records(records: list[dict]) -> dict | None:
    """{"geometry", "presets"} for the records' study, or None without a shared geometry or without torch."""
    geom = geometry(records)
    if geom is None:
        return None
    try:
        return {"geometry": geom, "presets": preset_table(geom)}
    except ImportError:  # torch not installed (a deployed Space): the shipped presets.json is used instead
        return None


def nearest_preset(presets: list[dict] | None, N: float) -> dict | None:
    """The preset whose parameter count is nearest N in log space, with its ratio to N; None without presets."""
    if not presets or not (N and math.isfinite(N) and N > 0):
        return None
    best = min(presets, key=lambda p: abs(math.log(p["N"] / N)))
    return {**best, "ratio": best["N"] / N, "at_edge": best in (presets[0], presets[-1]) and
            abs(math.log(best["N"] / N)) > math.log(1.5)}
