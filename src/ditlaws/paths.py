"""Paths: where ditlaws keeps files it derives once and reuses (feature-network weights, FID reference statistics),
and the check that an output file or folder can be written, done before any work (every CLI uses it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ditlaws.errors import UserError


def cache_root() -> Path:
    """$DITLAWS_CACHE, else ~/.cache/ditlaws."""
    return Path(os.environ.get("DITLAWS_CACHE", Path.home() / ".cache" / "ditlaws"))


def check_writable(path: Path, flag: str = "--out", *, folder: bool = False) -> None:
    """Refuse an output path before any work: for a file, a path that is a folder; for a folder (`folder=True`), a
    path that is a file; for either, a path under a file or in a place where nothing can be created (a file is
    created and removed in the deepest existing folder: permissions, read-only file systems and quotas all show,
    for root too). Creates nothing that stays. `flag` names the flag or key in the message ("" for none)."""
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    long = [part for part in path.parts if len(os.fsencode(part)) > 255]
    if long:
        raise UserError(f"{flag + ' ' if flag else ''}{str(path)[:60]}...: the name {long[0][:20]}... is "
                        f"{len(os.fsencode(long[0]))} bytes; a file or folder name is at most 255")
    if folder and path.exists() and not path.is_dir():
        raise UserError(f"{name}: is a file, not a folder; give a folder to write into (new or existing)")
    if not folder and path.is_dir():
        raise UserError(f"{name}: is a folder; give the path of the file to write")
    existing = next(p for p in ((path, *path.parents) if folder else path.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{name}: {existing} is a file, not a folder; give a path inside a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise UserError(f"{name}: cannot write in {existing} ({err.strerror or type(err).__name__}); give a "
                        "writable location") from None
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{name}: the file is not writable")
