"""Experiment trackers (`train.trackers`) through `accelerator.init_trackers`; each is optional."""

from __future__ import annotations

import importlib.util

from ditlaws.errors import UserError

TRACKER_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",)}


def available_trackers(requested: list[str]) -> list[str]:
    """The requested trackers, after checking each one's package is installed (a one-line UserError if not)."""
    for name in requested:
        if not any(importlib.util.find_spec(module) for module in TRACKER_MODULES[name]):
            raise UserError(f"train.trackers: {name} is not installed (pip install {name}, "
                            "or pip install 'ditlaws[track]')")
    return list(requested)
