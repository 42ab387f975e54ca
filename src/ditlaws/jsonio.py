"""Files that are never seen half-written: records, reports, manifests, checkpoint state, figures.

Every file ditlaws writes goes through `atomic_path` (or the helpers built on it): the content goes to a
temporary file in the same folder (a hidden name ending in .tmp), is flushed to disk, given the mode a plain
`open()` would give it (0666 minus the umask; `tempfile.mkstemp` alone makes 0600, unreadable to colleagues on a
shared cluster) and renamed over the target. A reader, a crash or a full disk leaves the old file or the new one,
never half of one: on any error the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ditlaws.errors import NO_SPACE, no_space  # noqa: F401  (re-exported: what writers check)


def disk_full(err: BaseException, folder: str | Path) -> bool:
    """Whether a library's error while writing into `folder` is a full disk (torch.save says "iostream error" /
    "unexpected pos" from its zip writer, not ENOSPC)."""
    import shutil

    folder = Path(folder)
    text = " ".join(str(e) for e in (err, err.__context__, err.__cause__) if e is not None)
    if any(no_space(e) for e in (err.__context__, err.__cause__) if e is not None):
        return True
    try:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    except OSError:
        free = 0
    if any(words in text for words in ("No space left", "os error 28", "os error 27", "Disk quota", "too large")):
        return True
    return ("iostream error" in text or "unexpected pos" in text or "file write failed" in text) and \
        free < 64 * 2**20


def as_no_space(err: BaseException, folder: str | Path) -> BaseException:
    """`err` as an OSError(ENOSPC) when it is a full disk in a library's own words, else `err` itself."""
    if isinstance(err, OSError) or not disk_full(err, folder):
        return err
    return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({str(err).splitlines()[0] if str(err) else ''})",
                   str(folder))


def umask_mode(base: int = 0o666) -> int:
    """The mode `open()` gives a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def umask_modes(folder: str | Path) -> None:
    """Give every file under `folder` the mode a plain `open()` would (0666 minus the umask): libraries that write
    through a temporary file (safetensors' `save_file`) leave 0600."""
    mode = umask_mode()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without error, the temporary file (written by the
    block, by any library) is flushed, given the umask's mode and renamed over `path`. On error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def _plain(value: Any) -> Any:
    """numpy / torch scalars -> Python numbers (json cannot encode them)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2, sort_keys: bool = False) -> None:
    """Write to a temporary file in the same folder, then rename over `path`: a reader sees old or new, never half."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, default=_plain, allow_nan=False)  # strict JSON
    write_text_atomic(path, text + "\n")


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
