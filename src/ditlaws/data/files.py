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


def expand_braces(pattern: str) -> list[str]:
    """All the names a pattern with {a..b} / {x,y} braces stands for, in order."""
    match = BRACE.search(pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end():]
    out = []
    for choice in _alternatives(match.group(1), pattern):
        out.extend(expand_braces(head + choice + tail))
        if len(out) > MAX_EXPANDED:
            raise UserError(f"data.data_files: {pattern!r} expands to more than {MAX_EXPANDED:,} files")
    return out


def expand_data_files(data_files):
    """`data.data_files` (a pattern, a list of them, or a {split: patterns} dict) with every brace expanded."""
    if data_files is None:
        return None
    if isinstance(data_files, dict):
        return {split: expand_data_files(value) for split, value in data_files.items()}
    patterns = [data_files] if isinstance(data_files, str) else list(data_files)
    expanded = [name for pattern in patterns for name in expand_braces(str(pattern))]
    return expanded[0] if isinstance(data_files, str) and len(expanded) == 1 else expanded
