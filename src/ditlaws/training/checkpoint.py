"""Checkpoint folders: `<output>/checkpoints/step_<k>`, written by every process, pruned by the main one.

A folder holds what `accelerator.save_state` writes (model.safetensors, optimizer.bin, per-process RNG states)
plus `training_state.json` (step, loss EMA, tail sums, the run's fingerprint). The JSON is written last, after
all processes have saved, so a folder without it is an interrupted save and is never resumed from.
Accelerate 1.15 reads optimizer.bin and the RNG files through `accelerate.utils.load`, i.e. `torch.load` with
`weights_only=True`; we do not use `register_for_checkpointing`, whose loader passes `weights_only=False`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ditlaws.errors import UserError
from ditlaws.jsonio import write_json_atomic

STATE_FILE = "training_state.json"
STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step_{step}"


def complete_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of finished checkpoints, oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = []
    if root.is_dir():
        for path in root.iterdir():
            match = STEP_DIR.match(path.name)
            if match and (path / STATE_FILE).is_file():
                found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_resume(resume: str | None, output_dir: str | Path) -> Path | None:
    """`train.resume`: None, "latest" (the newest finished checkpoint, or a fresh start if none) or a folder."""
    if resume is None:
        return None
    if resume == "latest":
        found = complete_checkpoints(output_dir)
        return found[-1][1] if found else None
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise UserError(f"train.resume: {path} is not a finished checkpoint folder (no {STATE_FILE}); "
                        "use 'latest' or a checkpoints/step_<k> folder")
    return path


def write_state(folder: Path, state: dict) -> None:
    write_json_atomic(folder / STATE_FILE, state, indent=1)


def read_state(folder: Path) -> dict:
    return json.loads((folder / STATE_FILE).read_text())


def prune(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` finished checkpoints (and stale unfinished ones); return what went."""
    finished = complete_checkpoints(output_dir)
    newest = finished[-1][0] if finished else -1
    removed = [path for _, path in finished[:-keep]] if keep > 0 else [path for _, path in finished]
    root = Path(output_dir) / "checkpoints"
    if root.is_dir():  # unfinished folders older than the newest finished one are leftovers of a crash
        for path in root.iterdir():
            match = STEP_DIR.match(path.name)
            if match and not (path / STATE_FILE).is_file() and int(match.group(1)) < newest:
                removed.append(path)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
