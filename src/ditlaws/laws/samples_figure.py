"""One picture of how generation improves with compute: each budget's compute-optimal run, samples side by side.

Rows are budgets (smallest first); each row is the first images of that budget's lowest-loss run's sample grid
(written by `evaluate_dit.py --metrics samples` or a sweep's `eval.generation`). Sample noise is seeded by sample
id, so column j shows the same prompt and the same starting noise in every row: only the model differs.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

LABEL_WIDTH = 150


def compute_optimal_runs(records: list[dict]) -> list[dict]:
    """The lowest-validation-loss record of every budget, smallest budget first."""
    groups = defaultdict(list)
    for record in records:
        loss = ((record.get("eval") or {}).get("val_loss") or {}).get("mean")
        if record.get("budget") is not None and loss is not None:
            groups[float(record["budget"])].append((loss, record))
    return [min(groups[b], key=lambda pair: pair[0])[1] for b in sorted(groups)]


def sample_grid_of(record: dict, split: str = "val") -> Path | None:
    """The sample grid PNG of a record's generation evaluation, where it exists on this disk."""
    eval_json = ((record.get("eval") or {}).get("generation") or {}).get("eval_json")
    if not eval_json or not Path(eval_json).is_file():
        return None
    results = json.loads(Path(eval_json).read_text()).get("results") or {}
    grid = ((results.get(split) or {}).get("samples") or {}).get("grid")
    if grid is None:
        return None
    grid = Path(grid) if Path(grid).is_absolute() else Path(eval_json).parent / Path(grid).name
    return grid if grid.is_file() else None


def first_row(grid_path: Path, columns: int = 8) -> Image.Image:
    """The first row of a sample grid (images with their captions), as `save_grid` laid it out."""
    n = len(json.loads(grid_path.with_suffix(".json").read_text())["captions"])
    grid = Image.open(grid_path).convert("RGB")
    per_row = max(1, min(columns, n))
    tile = grid.width // per_row
    row_height = grid.height // math.ceil(n / per_row)
    return grid.crop((0, 0, min(grid.width, tile * columns), row_height))


def row_label(record: dict) -> list[str]:
    ev = record.get("eval") or {}
    lines = [f"C = {record['budget']:.3g}", f"N = {record['N'] / 1e3:.1f}k", f"loss {ev['val_loss']['mean']:.4f}"]
    if isinstance(ev.get("fid"), (int, float)):
        lines.append(f"FID {ev['fid']:.1f}")
    for key, name in (("accuracy_colour", "colour"), ("accuracy_position", "position"), ("accuracy_shape", "shape")):
        if isinstance(ev.get(key), (int, float)):
            lines.append(f"{name} acc {ev[key]:.2f}")
    return lines


def samples_by_budget(records: list[dict], path: Path, columns: int = 8) -> Path | None:
    """Write the figure; None when fewer than two budgets have samples (nothing to compare)."""
    rows = [(r, g) for r in compute_optimal_runs(records) if (g := sample_grid_of(r)) is not None]
    if len(rows) < 2:
        return None
    strips = [first_row(grid, columns) for _, grid in rows]
    width = LABEL_WIDTH + max(s.width for s in strips)
    figure = Image.new("RGB", (width, sum(s.height for s in strips)), (255, 255, 255))
    draw, font, y = ImageDraw.Draw(figure), ImageFont.load_default(), 0
    for (record, _), strip in zip(rows, strips):
        figure.paste(strip, (LABEL_WIDTH, y))
        for j, line in enumerate(row_label(record)):
            draw.text((6, y + 6 + 13 * j), line, fill=(0, 0, 0), font=font)
        draw.line((0, y, width, y), fill=(180, 180, 180))
        y += strip.height
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ditlaws.jsonio import atomic_path

    with atomic_path(path) as tmp:
        figure.save(tmp, format="PNG")
    return path
