"""Where ditlaws keeps files it derives once and reuses (feature-network weights, FID reference statistics)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$DITLAWS_CACHE, else ~/.cache/ditlaws."""
    return Path(os.environ.get("DITLAWS_CACHE", Path.home() / ".cache" / "ditlaws"))
