"""Names a package exports but loads on first access: importing torch, diffusers or datasets costs seconds, and
every process imports `ditlaws` (the store, the laws and the Space without torch) and the sweep planner
`ditlaws.training` without needing them."""

import importlib
from collections.abc import Callable


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` (PEP 562) that imports ``exports[name]`` (a module path) when ``name`` is first used."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
