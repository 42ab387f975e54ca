"""A run folder belongs to one run: check what is already there before anything is written.

The resolved `config.yaml` in a run folder says which run it holds. Before training writes a byte:
- an empty (or new) folder is claimed;
- a folder holding a *different* run (its config differs in anything that changes the numbers, see
  `ditlaws.config.identity`) is refused, naming the differing keys, unless `train.overwrite` is set, which removes
  that run's files (only ditlaws' own: config.yaml, metrics.jsonl, summary.json, model/, checkpoints/, eval files);
- a finished identical run (summary.json and model/) is reported as done, not trained again;
- an unfinished identical run continues only with `train.resume` (else it is refused rather than overwritten).
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from ditlaws.config import config_from_dict, identity, identity_diff
from ditlaws.errors import UserError
from ditlaws.paths import check_writable

RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "eval.json", "hub_push.json")
RUN_FOLDERS = ("model", "checkpoints")


@dataclass(frozen=True)
class FolderState:
    status: str  # "new", "finished", "unfinished"
    summary_path: Path | None = None


def stored_identity(output: Path) -> dict | None:
    """The identity of the run recorded in `output/config.yaml`; None when there is none."""
    path = output / "config.yaml"
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return identity(config_from_dict(raw, source=str(path)))
    except (UserError, yaml.YAMLError, UnicodeDecodeError, TypeError, AttributeError):
        return {"unreadable": str(path)}


def has_run_files(output: Path) -> bool:
    return any((output / name).exists() for name in (*RUN_FILES, *RUN_FOLDERS))


def check_folder(output: Path) -> None:
    """A run folder must be a folder (or not exist yet) where files can be written."""
    check_writable(output, "train.output_dir", folder=True)


@contextmanager
def locked(output: Path, lock=None):
    """Hold the run folder's lock (`ditlaws.locks`) while training: taken here on the main process unless the
    caller holds it already (the sweep runner does); a folder another live process holds is refused. Folders made
    here for the lock are removed again when they end up empty (the run was refused before writing anything)."""
    import os

    # The launcher's RANK (torchrun / accelerate launch) says which process is the main one before any process
    # group exists; a plain `python` run has none and is the main process.
    if lock is not None or int(os.environ.get("RANK", "0")) != 0:
        yield lock
        return
    from ditlaws.locks import folder_lock

    created = [p for p in (output, *output.parents) if not p.exists()]
    output.mkdir(parents=True, exist_ok=True)
    try:
        with folder_lock(output, label="train_dit.py", timeout=0) as held:
            yield held
    finally:  # a run refused before writing anything leaves no empty folders behind
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def claim(cfg, output: Path) -> FolderState:
    """Decide what training may do in `output` (see the module docstring); raises UserError when it must not."""
    check_folder(output)
    if not output.exists() or not has_run_files(output):
        return FolderState("new")
    ours, theirs = identity(cfg), stored_identity(output)
    if theirs is None or theirs != ours:
        differing = ("config.yaml missing" if theirs is None else
                     "config.yaml unreadable" if "unreadable" in theirs else ", ".join(identity_diff(theirs, ours)))
        if not cfg.train.overwrite:
            raise UserError(f"train.output_dir: {output} holds a different run ({differing}); choose another "
                            "train.output_dir, or pass --train.overwrite true to replace it")
        remove_run(output)
        return FolderState("new")
    finished = (output / "summary.json").is_file() and (output / "model" / "config.json").is_file()
    if cfg.train.overwrite:
        remove_run(output)
        return FolderState("new")
    if finished:
        return FolderState("finished", output / "summary.json")
    if cfg.train.resume is None:
        raise UserError(f"train.output_dir: {output} holds an unfinished run of this config; pass "
                        "--train.resume latest to continue it, or --train.overwrite true to start it again")
    return FolderState("unfinished")


def remove_run(output: Path) -> None:
    """Delete a run's own files from its folder (other files stay)."""
    for name in RUN_FILES:
        (output / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        shutil.rmtree(output / name, ignore_errors=True)
    for path in output.glob("samples_*.png"):
        path.unlink(missing_ok=True)
