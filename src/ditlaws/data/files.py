"""`data.data_files` patterns: brace ranges and lists, expanded here because `datasets` does not for local files.

`/data/laion/{00000..00003}.tar` -> 00000.tar .. 00003.tar (zero padding kept from the wider bound),
`part-{a,b}.parquet` -> part-a.parquet, part-b.parquet; several braces multiply out; globs (`*.tar`) are left to
`datasets`. A pattern without braces passes through unchanged, so hf:// URLs and globs work as before.
"""

from __future__ import annotations

import re

from ditlaws.errors import UserError

BRACE = re.compile(r"\{([^{}]*)\}")
RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
MAX_EXPANDED = 1_000_000


def _count(body: str) -> int:
    """How many alternatives a brace body holds, without building them."""
    match = RANGE.match(body)
    if match:
        return abs(int(match.group(2)) - int(match.group(1))) + 1
    return len(body.split(",")) if "," in body else 1


def _alternatives(body: str, pattern: str) -> list[str]:
    match = RANGE.match(body)
    if match:
        lo_text, hi_text = match.groups()
        lo, hi = int(lo_text), int(hi_text)
        width = max(len(lo_text), len(hi_text)) if (lo_text.startswith("0") or hi_text.startswith("0")) else 0
        step = 1 if hi >= lo else -1
        return [f"{i:0{width}d}" for i in range(lo, hi + step, step)]
    if "," in body:
        return body.split(",")
    raise UserError(f"data.data_files: {pattern!r}: braces hold a range {{00000..00099}} or a list {{a,b}}, "
                    f"got {{{body}}}")


def check_braces(pattern: str) -> None:
    """Braces must pair up and not nest, and the expansion must stay under MAX_EXPANDED names: all checked
    before anything is built."""
    depth = 0
    for char in pattern:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth > 1:
            raise UserError(f"data.data_files: {pattern!r}: nested braces are not supported; write one list, "
                            "e.g. part-{0,1,2}")
        if depth < 0:
            break
    if depth != 0:
        raise UserError(f"data.data_files: {pattern!r}: unbalanced braces")
    total = 1
    for body in BRACE.findall(pattern):
        total *= _count(body)
        if total > MAX_EXPANDED:
            raise UserError(f"data.data_files: {pattern!r} expands to more than {MAX_EXPANDED:,} files")


def expand_braces(pattern: str) -> list[str]:
    """All the names a pattern with {a..b} / {x,y} braces stands for, in order."""
    check_braces(pattern)
    return _expand(pattern)


def _expand(pattern: str) -> list[str]:
    match = BRACE.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end():]
    out = []
    for choice in _alternatives(match.group(1), pattern):
        out.extend(_expand(head + choice + tail))
    return out


def expand_data_files(data_files):
    """`data.data_files` (a pattern, a list of them, or a {split: patterns} dict) with every brace expanded."""
    if data_files is None:
        return None
    if isinstance(data_files, dict):
        return {split: expand_data_files(value) for split, value in data_files.items()}
    patterns = [data_files] if isinstance(data_files, str) else list(data_files)
    expanded = [name for pattern in patterns for name in expand_braces(str(pattern))]
    seen: set[str] = set()
    for name in expanded:
        if name in seen:
            raise UserError(f"data.data_files: {name!r} is named twice (its rows would be read twice); name each "
                            "file once")
        seen.add(name)
    return expanded[0] if isinstance(data_files, str) and len(expanded) == 1 else expanded


def local_files(data_files) -> list[str]:
    """The local files a (brace-expanded) `data_files` names, globs resolved; remote (hf://, http) entries and
    patterns that match nothing locally are left to `datasets`."""
    import glob
    import os

    if data_files is None:
        return []
    if isinstance(data_files, dict):
        return [f for value in data_files.values() for f in local_files(value)]
    out = []
    for pattern in [data_files] if isinstance(data_files, str) else data_files:
        pattern = str(pattern)
        if "://" in pattern:
            continue
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        out += [m for m in matches if os.path.isfile(m)]
    return out


def check_local_files(data_files) -> None:
    """Refuse, before reading any row, local data files that are empty, not a parquet file (footer unreadable)
    or a tar cut short inside a member: `datasets` would crash on them mid-run or drop their rows uncounted."""
    import os
    import tarfile

    for path in local_files(data_files):
        size = os.path.getsize(path)
        if size == 0:
            raise UserError(f"data.data_files: {path} is empty (0 bytes); re-create it or leave it out")
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            try:
                pq.read_metadata(path)
            except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a damaged footer
                raise UserError(f"data.data_files: {path} is not a readable parquet file ({type(err).__name__}: "
                                f"{str(err).splitlines()[0][:100] if str(err) else ''}); re-create it or leave it "
                                "out") from None
        elif path.endswith(".tar") and not _ends_like_a_tar(path, size):  # else scan the members' headers
            try:
                end, last = 0, None
                with tarfile.open(path, "r:") as archive:
                    for member in archive:
                        if member.isfile() and member.offset_data + member.size > size:
                            raise UserError(f"data.data_files: {path} is truncated inside member {member.name!r} "
                                            f"({member.offset_data + member.size - size} bytes missing); "
                                            "re-download it or leave it out")
                        end, last = member.offset_data + -(-member.size // 512) * 512, member.name
                with open(path, "rb") as f:  # after the last member only zero blocks may follow (not a cut header)
                    f.seek(end)
                    if any(f.read(1 << 20)):
                        raise UserError(f"data.data_files: {path} is truncated after member {last!r} (a member "
                                        "header cut short); re-download it or leave it out")
            except tarfile.TarError as err:
                raise UserError(f"data.data_files: {path} is truncated or not a tar file ({err}); re-download it "
                                "or leave it out") from None


def _ends_like_a_tar(path: str, size: int) -> bool:
    """A complete tar is whole 512-byte blocks ending in (at least) two zero blocks."""
    if size % 512 or size < 1024:
        return False
    with open(path, "rb") as f:
        f.seek(size - 1024)
        return not any(f.read(1024))
