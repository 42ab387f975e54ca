"""The code versions written into every record (runs, caches, fits): one owner, read without importing anything."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "diffusers", "accelerate", "transformers", "datasets", "huggingface_hub", "numpy", "scipy")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """{"ditlaws": ..., "python": ..., package: version or None}; from package metadata, so nothing is imported."""
    import ditlaws

    out: dict[str, str | None] = {"ditlaws": ditlaws.__version__, "python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the ditlaws checkout this code runs from (with "-dirty" if modified), or None."""
    import ditlaws

    here = Path(ditlaws.__file__).resolve().parent
    try:
        run = lambda *args: subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10)
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = run("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
