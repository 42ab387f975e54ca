"""Paths: where ditlaws keeps files it derives once and reuses (feature-network weights, FID reference statistics),
and the check that an output file can be written, done before any work."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ditlaws.errors import UserError


def cache_root() -> Path:
    """$DITLAWS_CACHE, else ~/.cache/ditlaws."""
    return Path(os.environ.get("DITLAWS_CACHE", Path.home() / ".cache" / "ditlaws"))


def check_writable(path: Path, flag: str = "--out") -> None:
    """Refuse an output file path that is a folder, lies under a file, or cannot be written (a file is created and
    removed in its deepest existing folder: permissions, read-only file systems and quotas all show)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give the path of the file to write")
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write in {existing} ({err.strerror or type(err).__name__})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{flag} {path}: the file is not writable")
