"""The store layout, spelled once: names, paths of records / metrics / kept models, and what a store folder is.

    runs/<study>/<run_id>.json            one record per run (docs/ARCHITECTURE.md, "Run record")
    runs/<study>/<run_id>/metrics.jsonl   its training curve
    models/<run_id>/                      a kept checkpoint in diffusers format (on the Hub: a model repo)

Torch-free, like the whole of `ditlaws.store`: config, laws, sweep and the Space read it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ditlaws.errors import UserError

RUNS, MODELS = "runs", "models"
SHAPE = f"<store>/{RUNS}/<study>/<run_id>.json"  # for messages
RECORD_PATH = re.compile(rf"^{RUNS}/([^/]+)/([^/]+)\.json$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# a DiTPipeline's parts beside the transformer
PIPELINE_PARTS = ("model_index.json", "pipeline.py", "scheduler", "text_encoder")
MODEL_EXTRAS = ("README.md", "train_config.yaml")  # the card and the shipped config of a model repo


def check_name(kind: str, name: str) -> str:
    """Study and run ids become path segments and Hub file names: keep them to a safe alphabet."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise UserError(f"{kind} {name!r}: use letters, digits, '.', '_' and '-' (1-96 chars, no '..')")
    return name


def record_path(study: str, run_id: str) -> str:
    """runs/<study>/<run_id>.json, relative to the store's root (a folder or the results repo)."""
    return f"{RUNS}/{check_name('study', study)}/{check_name('run id', run_id)}.json"


def metrics_path(study: str, run_id: str) -> str:
    return f"{RUNS}/{check_name('study', study)}/{check_name('run id', run_id)}/metrics.jsonl"


def model_path(run_id: str) -> str:
    return f"{MODELS}/{check_name('run id', run_id)}"


def is_store(folder: str | Path) -> bool:
    """A folder with the store layout (its runs/ folder exists)."""
    return (Path(folder) / RUNS).is_dir()


def require_store(folder: str | Path, flag: str) -> Path:
    """`folder` when it is a store, else a one-line error naming the flag and the expected layout."""
    if not is_store(folder):
        raise UserError(f"{flag}: {folder} is not a run store (no {RUNS}/ folder)")
    return Path(folder)


def check_record(record: dict) -> None:
    """The fields every stored record needs: its study and run id (the file it lives in)."""
    for key in ("study", "run_id"):
        if key not in record:
            raise UserError(f"run record: missing field {key!r}")


def check_safetensors(names: Iterable[str], where: str) -> None:
    """A model must come as safetensors: a folder or repo with only pickle weights is refused."""
    names = [str(n) for n in names]
    if any(n.endswith(".safetensors") for n in names):
        return
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise UserError(f"{where}: only pickle weights ({', '.join(pickles[:3])}); ditlaws loads safetensors only")
    raise UserError(f"{where}: no model weights (*.safetensors)")


def model_files(model_dir: str | Path) -> dict[str, Path]:
    """The files of a model folder as a store keeps them (path in repo -> local file): config.json and the
    safetensors weights (+ index), and, when present, the pipeline parts, the card and the shipped config."""
    folder = Path(model_dir)
    if not (folder / "config.json").is_file():
        raise UserError(f"{folder}: not a diffusers model folder (no config.json)")
    names = [p.name for p in folder.iterdir() if p.is_file()]
    check_safetensors(names, str(folder))
    files = {name: folder / name for name in sorted(names)
             if name == "config.json" or name.endswith((".safetensors", ".safetensors.index.json"))
             or name in MODEL_EXTRAS or name in PIPELINE_PARTS}
    for part in PIPELINE_PARTS:
        if (folder / part).is_dir():
            files.update({str(p.relative_to(folder)): p for p in sorted((folder / part).rglob("*")) if p.is_file()})
    return files
