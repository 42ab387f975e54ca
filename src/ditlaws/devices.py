"""The device a command runs on: an unknown or unavailable one is a one-line error before any work, not a
traceback later."""

from __future__ import annotations

import torch

from ditlaws.errors import UserError


def resolve_device(name: str | None, key: str = "--device") -> str:
    """`name`, checked (cpu, cuda, cuda:<index>, mps, present on this machine); None: cuda when available, else cpu."""
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"{key}: {name!r} is not a device; valid: cpu, cuda, cuda:<index>, mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise UserError(f"{key} {name}: no such CUDA device here ({count} visible); use cpu")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"{key} {name}: MPS is not available here; use cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"{key} {name}: {device.type} devices are not supported; use cpu, cuda or mps")
    return name
