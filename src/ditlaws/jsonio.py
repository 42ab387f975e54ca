"""JSON files that are never seen half-written: records, reports, manifests, checkpoint state."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    """numpy / torch scalars -> Python numbers (json cannot encode them)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2, sort_keys: bool = False) -> None:
    """Write to a temporary file in the same folder, then rename over `path`: a reader sees old or new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent, sort_keys=sort_keys, default=_plain, allow_nan=False)  # strict JSON
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_json_if_present(path: Path, what: str = "JSON") -> Any:
    """The file's JSON, or None when there is no such file; a damaged one is a UserError naming it."""
    from ditlaws.errors import UserError

    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid {what} ({err})") from None
